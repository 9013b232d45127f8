"""Printers: kernel statements in index notation → whole-array NumPy or Torch code.

Every sub-expression has a *layout*: the indices it carries, in the order of
the statement's left-hand side followed by the indices of enclosing sums. A
tensor element prints as the array, transposed into that order; an operand
missing an axis gets ``None`` inserted so broadcasting lines it up; a sum of a
product of tensors prints as ``@`` (a GEMM or GEMV, recognised by
``ir.contraction``) or ``einsum`` whose subscripts come from our own index
lists (never from SymPy's array printer, sympy#30395); any other sum prints its
body and reduces the trailing axes.

``ArrayPrinter`` holds all of that. ``NumPyKernelPrinter`` and
``TorchKernelPrinter`` only name things, through a vocabulary table
(``FUNCTIONS``: ``np.arcsinh`` / ``torch.asinh``, ``scipy.special.erf`` /
``torch.special.erf``) and a few methods (``axis`` / ``dim``, ``transpose`` /
``permute``). Arithmetic on Python numbers (sizes, scalar hyper-parameters,
``√2``, ``π``) prints through Python's ``math``, which keeps float32 arrays
float32. The modules a printed statement refers to are collected in
``imports``, and the template imports exactly those.

Nothing here imports torch: deriving needs only SymPy, NumPy and Jinja.
"""
from __future__ import annotations

import string

import sympy as sp
from sympy.printing.str import StrPrinter

from . import grid_code, update_code
from .ir import AtMax, MaxOver, MaxWithZeros, OnGrid, affine, contraction, correlation, extent, free_indices, shifted
from .text import index_text, positive_first


class PrintError(ValueError):
    """A statement that a backend cannot spell; the message is one line."""


class Code(sp.Symbol):
    """A leaf holding code already printed (a padded operand)."""


def _atomic(e) -> bool:
    return isinstance(e, (sp.Indexed, sp.Symbol, sp.Function, sp.Sum, sp.Number, MaxOver))


# SymPy function → (NumPy spelling, Torch spelling, Python scalar spelling). None: not available there.
FUNCTIONS = {
    "exp": ("np.exp", "torch.exp", "math.exp"),
    "log": ("np.log", "torch.log", "math.log"),
    "expm1": ("np.expm1", "torch.expm1", "math.expm1"),
    "log1p": ("np.log1p", "torch.log1p", "math.log1p"),
    "sin": ("np.sin", "torch.sin", "math.sin"),
    "cos": ("np.cos", "torch.cos", "math.cos"),
    "tan": ("np.tan", "torch.tan", "math.tan"),
    "asin": ("np.arcsin", "torch.asin", "math.asin"),
    "acos": ("np.arccos", "torch.acos", "math.acos"),
    "atan": ("np.arctan", "torch.atan", "math.atan"),
    "sinh": ("np.sinh", "torch.sinh", "math.sinh"),
    "cosh": ("np.cosh", "torch.cosh", "math.cosh"),
    "tanh": ("np.tanh", "torch.tanh", "math.tanh"),
    "asinh": ("np.arcsinh", "torch.asinh", "math.asinh"),
    "acosh": ("np.arccosh", "torch.acosh", "math.acosh"),
    "atanh": ("np.arctanh", "torch.atanh", "math.atanh"),
    "Abs": ("np.abs", "torch.abs", "abs"),
    "sign": ("np.sign", "torch.sign", None),
    "erf": ("scipy.special.erf", "torch.special.erf", "math.erf"),
    "erfc": ("scipy.special.erfc", "torch.special.erfc", "math.erfc"),
    "Erfc": ("scipy.special.erfc", "torch.special.erfc", "math.erfc"),
    "erfinv": ("scipy.special.erfinv", "torch.special.erfinv", None),
    "erfcinv": ("scipy.special.erfcinv", None, None),
    "loggamma": ("scipy.special.gammaln", "torch.special.gammaln", "math.lgamma"),
    "gamma": ("scipy.special.gamma", None, "math.gamma"),
    "digamma": ("scipy.special.digamma", "torch.special.digamma", None),
}
# Two-argument functions.
FUNCTIONS2 = {"atan2": ("np.arctan2", "torch.atan2", "math.atan2")}
CONSTANTS = {"Pi": "math.pi", "Exp1": "math.e"}
IMPORTS = {"np": "import numpy as np", "torch": "import torch", "math": "import math",
           "scipy": "import scipy.special", "numbers": "import numbers"}


def _module_of(spelling: str) -> str:
    return spelling.split(".", 1)[0]


class _Printer(StrPrinter):
    """What both the array and the scalar printers share: numbers, constants, the vocabulary."""

    column = 2   # index into FUNCTIONS
    backend = "Python"
    printmethod = "_kernel_code"  # not Indexed._sympystr, which prints X[s, m]

    def __init__(self, imports: set):
        super().__init__({"order": "none"})
        self.imports = imports

    def spelling(self, name: str, table=FUNCTIONS) -> str:
        entry = table.get(name)
        spelled = entry[self.column] if entry else None
        if spelled is None:
            raise PrintError(f"{name} has no {self.backend} spelling")
        if "." in spelled:
            self.imports.add(_module_of(spelled))
        return spelled

    def _as_ordered_terms(self, expr, order=None):
        return positive_first(super()._as_ordered_terms(expr, order))

    def _print_Float(self, e):
        return repr(float(e))

    def _print_Rational(self, e):
        return f"{e.p}/{e.q}"

    def _print_NumberSymbol(self, e):
        code = CONSTANTS[type(e).__name__]
        self.imports.add("math")
        return code

    _print_Pi = _print_NumberSymbol
    _print_Exp1 = _print_NumberSymbol

    def _print_ImaginaryUnit(self, e):
        raise PrintError("a kernel cannot compute with the imaginary unit")

    def _print_NaN(self, e):
        raise PrintError("the expression holds nan")

    _print_ComplexInfinity = _print_NaN
    _print_Infinity = _print_NaN
    _print_NegativeInfinity = _print_NaN

    def _print_Function(self, e):
        name = type(e).__name__
        if name == "polygamma" and e.args[0] == 0:
            return f"{self.spelling('digamma')}({self._print(e.args[1])})"
        if name in FUNCTIONS2:
            return f"{self.spelling(name, FUNCTIONS2)}({', '.join(self._print(a) for a in e.args)})"
        if name not in FUNCTIONS or len(e.args) != 1:
            raise PrintError(f"{name} has no {self.backend} spelling")
        return f"{self.spelling(name)}({self._print(e.args[0])})"

    def _print_Pow(self, e, rational=False):
        base, exp = e.args
        b = self._print(base)
        if exp == sp.S.Half:
            return f"{self.spelling('sqrt', {'sqrt': self.sqrt})}({b})"
        if exp == -sp.S.Half:
            return f"1/{self.spelling('sqrt', {'sqrt': self.sqrt})}({b})"
        # A negative number or a fraction (2/3 prints as a quotient) is a base only inside parentheses.
        b = b if _atomic(base) and not (isinstance(base, sp.Number) and (base < 0 or not base.is_Integer)) \
            else f"({b})"
        if exp == -1:
            return f"1/{b}"
        if exp.is_Integer and exp > 0:
            return f"{b}**{self._print(exp)}"
        # A negative or fractional exponent needs parentheses: x**3/2 would be (x**3)/2.
        return f"{b}**({self._print(exp)})"

    sqrt = (None, None, "math.sqrt")


class ScalarPrinter(_Printer):
    """Plain Python for arithmetic on numbers and scalar symbols: ``math`` functions, ``max``, ``a if c else b``."""

    def __init__(self, imports: set, symbols: set):
        super().__init__(imports)
        self.symbols = symbols

    def _print_Symbol(self, e):
        self.symbols.add(e)
        return e.name

    def _print_Max(self, e):
        return "max(" + ", ".join(self._print(a) for a in e.args) + ")"

    def _print_floor(self, e):
        num, den = sp.fraction(sp.together(e.args[0]))
        if num.is_integer and den.is_integer and den != 1:
            return f"({self._print(num)})//({self._print(den)})"
        self.imports.add("math")
        return f"math.floor({self._print(e.args[0])})"

    def _print_Min(self, e):
        return "min(" + ", ".join(self._print(a) for a in e.args) + ")"

    def _print_sign(self, e):
        a = self._print(e.args[0])
        return f"((({a}) > 0) - (({a}) < 0))"

    def _print_Piecewise(self, e):
        code = self._print(e.args[-1].expr)
        if e.args[-1].cond != sp.true:
            raise PrintError("a Piecewise without an 'otherwise' branch")
        for value, cond in reversed(e.args[:-1]):
            code = f"({self._print(value)} if {self._print(cond)} else {code})"
        return code

    def _print_Relational(self, e):
        return f"{self._print(e.lhs)} {e.rel_op} {self._print(e.rhs)}"

    def _print_And(self, e):
        return " and ".join(f"({self._print(a)})" for a in e.args)

    def _print_Or(self, e):
        return " or ".join(f"({self._print(a)})" for a in e.args)

    def _print_Not(self, e):
        return f"not ({self._print(e.args[0])})"


class ArrayPrinter(_Printer):
    """Whole-array code for one backend; subclasses fill in the vocabulary."""

    module = ""          # "np" or "torch"
    column = 0
    HELPERS = {}         # name -> source of the indexing machinery (grid_code)
    HELPER_IMPORTS = {}  # name -> modules its source needs beyond the backend's own
    # Statements as steps on their own array (``_in_place``). Not in Torch: autograd differentiates the
    # Torch forwards (the reference for a user's module), and in-place steps break its saved values.
    IN_PLACE = False

    def __init__(self):
        super().__init__(set())
        self.imports.add(self.module)
        # Helper functions (``_grid_view``, ...) the printed code calls.
        self.helpers = set()
        # What a read off the grid holds: 0, or -inf inside a max (padding never wins).
        self._fill = None
        # Extents the engine derived from the reads (a convolution's Ho): set by the caller.
        self.derived = set()
        self._layout = ()
        # Dimension and scalar symbols the printed code refers to (the kernel binds them).
        self.symbols_used = set()
        self.scalars = ScalarPrinter(self.imports, self.symbols_used)
        # An argument whose dtype and device new arrays (an identity) take.
        self.like = None
        # A contraction may print as a bare ``A @ B`` only as the whole right-hand side or as a
        # term of a sum; anywhere else ``@`` (which binds like ``*``) is parenthesised.
        self._top = None
        self._bare_next = False
        # Gradients that are one matrix product nothing else reads: printed through ``_product``,
        # so a caller adding them into its own array (``into``) never forms them (update_code).
        self.deferrable = set()

    @property
    def sqrt(self):
        return (f"{self.module}.sqrt", f"{self.module}.sqrt", None)

    # -- backend vocabulary (overridden by subclasses) ---------------------
    def fn(self, name: str) -> str:
        return f"{self.module}.{name}"

    def reduce(self, code: str, op: str, axes: tuple, ndim: int) -> str:
        raise NotImplementedError

    def permute(self, code: str, perm: tuple) -> str:
        raise NotImplementedError

    def full(self, code: str, shape: str) -> str:
        """An array broadcast to ``shape``, as a new array."""
        raise NotImplementedError

    def flip(self, code: str, axes: tuple) -> str:
        """The array with the order of ``axes`` reversed."""
        raise NotImplementedError

    def ones_like(self, name: str) -> str:
        return f"{self.module}.ones_like({name})"

    def filled(self, code: str, shape: str, like: str) -> str:
        """An array of ``shape`` holding the number ``code``, with the dtype (and device) of array ``like``."""
        raise NotImplementedError

    def clamp(self, code: str, low: str | None, high: str | None) -> str:
        """Elementwise clamp of an array between Python numbers (either bound may be None)."""
        raise NotImplementedError

    def identity(self, n: str) -> str:
        raise NotImplementedError

    def typed(self, code: str) -> str:
        """A Python number as a scalar of the kernel's array dtype (and device)."""
        raise NotImplementedError

    # -- min, max, clamps ----------------------------------------------------
    def _minmax(self, e, which):
        consts = [a for a in e.args if not a.has(sp.Indexed, sp.IndexedBase, Code, sp.Idx)]
        arrays = [a for a in e.args if a not in consts]
        if len(arrays) == 1 and consts:
            inner = arrays[0]
            bound = self._scalar(sp.Max(*consts) if which == "maximum" else sp.Min(*consts))
            other = sp.Min if which == "maximum" else sp.Max
            # max(lo, min(hi, u)) and min(hi, max(lo, u)): one clip.
            if isinstance(inner, other) and len(inner.args) == 2:
                ic = [a for a in inner.args if not a.has(sp.Indexed, sp.IndexedBase, Code, sp.Idx)]
                if len(ic) == 1:
                    u = next(a for a in inner.args if a is not ic[0])
                    ib = self._scalar(ic[0])
                    lo, hi = (bound, ib) if which == "maximum" else (ib, bound)
                    return self.clamp(self._print(u), lo, hi)
            return self.clamp(self._print(inner), bound, None) if which == "maximum" else \
                self.clamp(self._print(inner), None, bound)
        code = self._print(arrays[0])
        for a in arrays[1:] + ([sp.Max(*consts) if which == "maximum" else sp.Min(*consts)] if consts else []):
            code = f"{self.fn(which)}({code}, {self._print(a)})"
        return code

    def _print_Min(self, e):
        return self._minmax(e, "minimum")

    def _print_Max(self, e):
        return self._minmax(e, "maximum")

    # -- layout ------------------------------------------------------------
    def layout_of(self, e) -> tuple:
        free = free_indices(e) if isinstance(e, sp.Basic) else set()
        return tuple(i for i in self._layout if i in free)

    def pad(self, e, code: str, target: tuple) -> str:
        """``code`` (in e's layout) with ``None`` axes so it broadcasts in ``target``.

        Broadcasting aligns trailing axes, so leading missing axes need nothing
        and trailing full slices can be left out.
        """
        have = self.layout_of(e)
        if not have:
            return code
        slots = self.pad_slots(have, target)
        while slots and slots[-1] == ":":
            slots.pop()
        if not slots:
            return code
        return f"{code if _atomic(e) else '(' + code + ')'}[{', '.join(slots)}]"

    def _needs_pad(self, a, target) -> bool:
        have = self.layout_of(a)
        return bool(have) and "None" in self.pad_slots(have, target)

    def pad_slots(self, have, target):
        return [":" if i in have else "None" for i in target[target.index(have[0]):]]

    def _padded(self, a, target):
        """``a`` ready to broadcast in ``target``: the padding goes on the innermost array operand."""
        if not self._needs_pad(a, target):
            return a
        if isinstance(a, sp.Mul) and a.args[0].is_Number:
            return a.args[0] * self._padded(sp.Mul(*a.args[1:]), target)
        if isinstance(a, sp.Pow) and not a.exp.has(sp.Indexed):
            return sp.Pow(self._padded(a.base, target), a.exp, evaluate=False)
        return Code(self.pad(a, self._print(a), target))

    def _operands(self, e):
        """e's arguments, array operands padded where broadcasting needs it."""
        target = self.layout_of(e)
        return [self._padded(a, target) for a in e.args]

    # -- statements --------------------------------------------------------
    def statement(self, st) -> str:
        if st.rhs.has(AtMax):
            lines = self.scatter(st)
            if lines is not None:
                return "\n".join(lines)
        self._layout = st.indices
        self._top = st.rhs
        product = contraction(st.rhs, st.indices) if st.name in self.deferrable else None
        if product is not None:
            left, right = self._factors(product)
            if "_matmul" in self.HELPERS:
                self.helper("_matmul")  # _product forms the product through it
            return f"{st.name} = {self.helper('_product')}(into, {st.name!r}, {left}, {right})"
        steps = self._in_place(st)
        if steps is not None:
            return "\n".join(steps)
        self._layout = st.indices
        self._top = st.rhs
        code = self._print(st.rhs)
        have = self.layout_of(st.rhs)
        if have != st.indices:
            shape = "(" + ", ".join(self._scalar(extent(i)) for i in st.indices) + ",)"
            if have:
                code = self.full(self.pad(st.rhs, code, st.indices), shape)
            else:  # a number (dX = dL/S): an array of it, of the kernel's dtype and device
                code = self.filled(code, shape, like=self._like(st.rhs))
        return f"{st.name} = {code}"

    # -- in place ------------------------------------------------------------
    def _in_place(self, st):
        """The statement as steps on its own new array, where its tree allows it: ``Y = X @ W.T`` then
        ``Y += b``, rather than a new array for every operation (fewer allocations and passes).

        One operand of each sum, product or function is the array being built; the others are
        printed as they would be. None where that saves nothing or the tree has no such path.
        """
        if not st.indices or not self.IN_PLACE:
            return None
        self._layout = tuple(st.indices)
        self._top = None
        steps = self._steps(st.rhs, st.name)
        if steps is None or len(steps) < 2:
            return None
        return steps

    def _steps(self, e, acc):
        """Lines that leave e's value in the new array ``acc`` (in the statement's layout), or None."""
        target = self._layout
        if self.layout_of(e) != target or e.has(OnGrid, AtMax, MaxOver):
            return None
        if isinstance(e, sp.Mul) and any(isinstance(a, sp.Piecewise) for a in e.args):
            pieces = [a for a in e.args if isinstance(a, sp.Piecewise)]
            if len(pieces) != 1:
                return None
            rest = sp.Mul(*[a for a in e.args if a is not pieces[0]])
            return self._steps(sp.Piecewise(*[(rest * v, c) for v, c in pieces[0].args]), acc)
        if isinstance(e, (sp.Add, sp.Mul)):
            args = list(self._as_ordered_terms(e)) if isinstance(e, sp.Add) else list(e.args)
            for n, head in enumerate(args):
                # A reciprocal never leads (1/b then times a may overflow where a/b does not), nor does a
                # product of reads alone (P − T is one operation as it is: −T then += P would be two).
                if self.layout_of(head) == target and not (isinstance(head, sp.Pow) and head.exp.is_negative) \
                        and not (isinstance(head, sp.Mul) and all(_atomic(a) and not isinstance(a, sp.Function)
                                                                  for a in head.args)):
                    steps = self._steps(head, acc) or self._fresh(head, acc)
                    if steps:
                        break
            else:
                return None
            others = args[:n] + args[n + 1:]
            if isinstance(e, sp.Add):
                for a in others:
                    op, a = ("-=", -a) if a.as_coeff_Mul()[0].is_negative else ("+=", a)
                    steps.append(f"{acc} {op} {self._branch(a, target)}")
                return steps
            # Factors over every axis one by one; the smaller ones (vectors, numbers) multiplied together
            # first and applied in one pass, numerator then denominator.
            full = [a for a in others if self.layout_of(a) == target]
            small = [a for a in others if a not in full]
            over = lambda a: isinstance(a, sp.Pow) and a.exp.is_negative
            for a in full:
                op, a = ("/=", sp.Pow(a.base, -a.exp)) if over(a) else ("*=", a)
                steps.append(f"{acc} {op} {self._branch(a, target)}")
            num = sp.Mul(*[a for a in small if not over(a)])
            den = sp.Mul(*[sp.Pow(a.base, -a.exp) for a in small if over(a)])
            steps += [f"{acc} {op} {self._branch(f, target)}" for op, f in (("*=", num), ("/=", den)) if f != 1]
            return steps
        if isinstance(e, sp.Function) and len(e.args) == 1 and type(e).__name__ in FUNCTIONS:
            inner = self._steps(e.args[0], acc)
            if inner is None:
                return self._fresh(e, acc)
            return inner + [f"{self.spelling(type(e).__name__)}({acc}, out={acc})"]
        if isinstance(e, (sp.Min, sp.Max)):
            arrays = [a for a in e.args if a.has(sp.Indexed)]
            inner = self._steps(arrays[0], acc) if len(arrays) == 1 else None
            if inner is None:
                return self._fresh(e, acc)
            bound = self._scalar((sp.Max if isinstance(e, sp.Max) else sp.Min)(*[a for a in e.args if a is not arrays[0]]))
            low, high = (bound, None) if isinstance(e, sp.Max) else (None, bound)
            return inner + [self.clamp_in_place(acc, low, high)]
        if isinstance(e, sp.Piecewise):
            if e.args[-1].cond != sp.true:
                return None
            last = e.args[-1].expr
            steps = self._steps(last, acc) or self._fresh(last, acc)
            if not steps:
                return None
            for value, cond in reversed(e.args[:-1]):
                array = value.has(sp.Indexed)
                branch = self._branch(value, target) if array else self._print(value)
                # Both over every axis (nothing to broadcast): the element-for-element form.
                whole = self.layout_of(cond) == target and (not array or self.layout_of(value) == target)
                steps.append(self.copy_where(acc, branch, self._cond(cond, target), whole))
            return steps
        return self._fresh(e, acc)

    def _fresh(self, e, acc):
        """``acc = <e>`` where printing e makes a new array in the statement's layout (not a view of an argument)."""
        if self.layout_of(e) != self._layout or not e.has(sp.Indexed):
            return None
        if isinstance(e, (sp.Add, sp.Mul, sp.Pow, sp.Min, sp.Max, sp.Piecewise, sp.Sum)) or \
                (isinstance(e, sp.Function) and type(e).__name__ in FUNCTIONS):
            self._top = e  # printed as a whole right-hand side: a product bare, Y = X @ W.T
            return [f"{acc} = {self._print(e)}"]
        return None

    def clamp_in_place(self, acc: str, low, high) -> str:
        raise NotImplementedError

    def copy_where(self, acc: str, value: str, cond: str, whole: bool) -> str:
        """acc where cond holds becomes value; ``whole``: cond and value (unless a number) have acc's shape."""
        raise NotImplementedError

    def _like(self, e) -> str:
        tensors = sorted(e.atoms(sp.Indexed), key=str)
        return str(tensors[0].base.label) if tensors else (self.like or "")

    def _is_scalar(self, expr) -> bool:
        return isinstance(expr, sp.Expr) and not expr.has(sp.Indexed, sp.IndexedBase, Code, sp.Idx)

    def _print(self, expr, **kwargs):
        # Arithmetic on Python numbers (sizes, eps, √2) is plain Python; anything holding a tensor
        # (indexed, scalar, or a delta over indices) is printed as arrays.
        if self._is_scalar(expr) and not isinstance(expr, (sp.Symbol, sp.Integer, sp.Float)):
            return self._scalar(expr)
        return super()._print(expr, **kwargs)

    def _scalar(self, e) -> str:
        return self.scalars.doprint(e)

    def _print_Symbol(self, e):
        self.symbols_used.add(e)
        return e.name

    # -- leaves --------------------------------------------------------------
    def _print_Code(self, e):
        return e.name

    def _print_Idx(self, e):
        raise PrintError(f"index {e} used as a value")

    def helper(self, name: str) -> str:
        """Use the indexing helper ``name`` (grid_code); the file then holds its source."""
        self.helpers.add(name)
        self.imports |= self.HELPER_IMPORTS.get(name, set())
        return name

    def _view(self, e):
        """A read at index expressions as a strided view: (the view as an Indexed over its own axes).

        An index that runs backwards on an axis where another runs forwards (``X[h − i]``) is read
        reversed, ``i → n − 1 − i``, and the view flipped back along it.
        """
        spec = []
        for ix in e.indices:
            a = affine(ix)
            if a is None:
                raise PrintError(f"{index_text(e)}: {index_text(ix)} is not an integer combination of indices")
            if any(not (c.is_positive or c.is_negative or c.is_zero) for _, c in a.coeffs):
                raise PrintError(f"{index_text(e)}: the sign of a coefficient in {index_text(ix)} is unknown")
            spec.append(a)
        axes = list(dict.fromkeys(m for a in spec for m, _ in a.coeffs))
        mixed = [a for a in spec if len({c.is_positive for _, c in a.coeffs if not c.is_zero}) > 1]
        turned = [m for m in axes if any(a.coeff(m).is_negative for a in mixed)]
        consts = [a.const + sum((a.coeff(m) * (extent(m) - 1) for m in turned), sp.S.Zero) for a in spec]

        def coeff(a, m):
            return -a.coeff(m) if m in turned else a.coeff(m)

        for a in spec:
            if len({coeff(a, m).is_positive for m, c in a.coeffs if not c.is_zero}) > 1:
                raise PrintError(f"{index_text(e)}: an index expression runs both ways in its indices")
        # The view's axes in the order the surrounding code lays them out: no transpose after.
        place = {m: n for n, m in enumerate(self._layout)}
        axes.sort(key=lambda m: place.get(m, len(place)))
        parts = []
        for a, const in zip(spec, consts):
            coeffs = ", ".join(self._scalar(coeff(a, m)) for m in axes)
            parts.append(f"(({coeffs}{',' if len(axes) == 1 else ''}), {self._scalar(const)}, {self._scalar(a.denom)})")
        shape = ", ".join(self._scalar(extent(m)) for m in axes)
        fill = "" if self._fill is None else f", fill={self._fill}"
        code = (f"{self.helper('_grid_view')}({e.base.label}, ({', '.join(parts)},), "
                f"({shape}{',' if len(axes) == 1 else ''}){fill})")
        if turned:
            code = self.flip(code, tuple(axes.index(m) for m in turned))
        return sp.IndexedBase(code)[tuple(axes)]

    def _print_Indexed(self, e):
        if shifted(e):
            return self._print_Indexed(self._view(e))
        name = str(e.base.label)
        natural = tuple(e.indices)
        if any(not isinstance(i, sp.Idx) for i in natural):
            fixed = ", ".join(":" if isinstance(i, sp.Idx) else self._scalar(i) for i in natural)
            inner = sp.IndexedBase(f"{name}[{fixed}]")[tuple(i for i in natural if isinstance(i, sp.Idx))]
            return self._print_Indexed(inner) if inner.indices else f"{name}[{fixed}]"
        if len(set(natural)) != len(natural):
            letters = self._letters(natural)
            sub = "".join(letters[i] for i in natural)
            out = "".join(letters[i] for i in self.layout_of(e))
            return f"{self.fn('einsum')}('{sub}->{out}', {name})"
        want = self.layout_of(e)
        perm = tuple(natural.index(i) for i in want)
        if perm == tuple(range(len(perm))):
            return name
        if len(perm) == 2:
            return f"{name}.T"
        return self.permute(name, perm)

    def _print_IndexedBase(self, e):
        return str(e.label)

    def _print_KroneckerDelta(self, e):
        i, j = e.args
        if not (isinstance(i, sp.Idx) and isinstance(j, sp.Idx)):
            raise PrintError(f"{index_text(e)}: a delta of index expressions that no scatter routes")
        if i.upper != j.upper:
            raise PrintError(f"a Kronecker delta between indices of different ranges ({i}, {j})")
        return self.identity(self._scalar(extent(i)))

    # -- elementwise ---------------------------------------------------------
    def _bare_term(self, a):
        if not isinstance(a, sp.Sum):
            return a
        self._bare_next = True
        try:
            return Code(self._print(a))
        finally:
            self._bare_next = False

    def _print_Add(self, e, order=None):
        fused = self.add_product(e)
        if fused is not None:
            return fused
        ops = [self._bare_term(a) for a in self._operands(e)]
        return super()._print_Add(sp.Add(*ops, evaluate=False))

    def _print_Mul(self, e):
        grids = [a for a in e.args if isinstance(a, OnGrid)]
        if grids:
            # [e ∈ 0..n−1] · t: where(mask, t, 0), so an inf or nan of t off the grid never shows.
            rest = sp.Mul(*[a for a in e.args if not isinstance(a, OnGrid)])
            target = self.layout_of(e)
            mask = " & ".join(self.pad(g, self._print(g), target) for g in grids)
            value = self.pad(rest, self._print(rest), target) if rest.has(sp.Indexed) else self.typed(self._print(rest))
            return f"{self.fn('where')}({mask}, {value}, 0)"
        pieces = [a for a in e.args if isinstance(a, sp.Piecewise)]
        if len(pieces) == 1:
            # c · Piecewise((a, p), (b, True)) = Piecewise((c a, p), (c b, True)): one where(), no product.
            rest = sp.Mul(*[a for a in e.args if a is not pieces[0]])  # not e / piece: SymPy inverts each branch
            return self._print(sp.Piecewise(*[(rest * v, c) for v, c in pieces[0].args]))
        ops = self._operands(e)
        return super()._print_Mul(e if ops == list(e.args) else sp.Mul(*ops, evaluate=False))

    def _print_Piecewise(self, e):
        target = self.layout_of(e)
        if e.args[-1].cond != sp.true:
            raise PrintError("a Piecewise without an 'otherwise' branch")
        code = self._branch(e.args[-1].expr, target)
        # No array element: a Python number, or a scalar argument that may be one (dL = 1.0).
        scalar = not e.args[-1].expr.has(sp.Indexed)
        for value, cond in reversed(e.args[:-1]):
            branch = self._branch(value, target)
            if scalar and not value.has(sp.Indexed):
                # where() of two Python numbers has the default dtype: give one the arrays' dtype.
                branch = self.typed(branch)
            code = f"{self.fn('where')}({self._cond(cond, target)}, {branch}, {code})"
            scalar = False
        return code

    def _branch(self, v, target):
        return self.pad(v, self._print(v), target) if v.has(sp.Indexed) else self._print(v)

    def _cond(self, c, target):
        if isinstance(c, sp.And):
            return " & ".join(f"({self._cond(a, target)})" for a in c.args)
        if isinstance(c, sp.Or):
            return " | ".join(f"({self._cond(a, target)})" for a in c.args)
        if isinstance(c, sp.Not):
            return f"~({self._cond(c.args[0], target)})"
        if isinstance(c, sp.logic.boolalg.ITE):
            a, b, d = c.args
            return self._cond(sp.Or(sp.And(a, b), sp.And(sp.Not(a), d)), target)
        if isinstance(c, sp.core.relational.Relational):
            lhs, rhs = (self._branch(a, target) for a in c.args)
            op = {"==": "==", "!=": "!="}.get(c.rel_op, c.rel_op)
            return f"{lhs} {op} {rhs}"
        raise PrintError(f"the condition {c} is not a comparison of arrays")

    # -- reductions ----------------------------------------------------------
    def _letters(self, indices):
        """einsum subscripts: the index names themselves when they are distinct single letters."""
        order = list(dict.fromkeys(list(self._layout) + list(indices)))
        names = [str(i.label) for i in order]
        if all(len(n) == 1 and n in string.ascii_letters for n in names):
            return dict(zip(order, names))
        return {i: string.ascii_lowercase[n] for n, i in enumerate(order)}

    def _reduction_layout(self, body, target, bound):
        """Axes for a reduced body: the natural order of its largest tensor, so no transpose is needed."""
        tensors = sorted(body.atoms(sp.Indexed), key=lambda t: (-len(t.indices), str(t)))
        lead = [i for i in (tensors[0].indices if tensors else ()) if i in target or i in bound]
        rest = [i for i in target + bound if i not in lead]
        layout = tuple(dict.fromkeys(lead + rest))
        kept = tuple(i for i in layout if i not in bound)
        return layout if kept == target else target + bound

    def _print_Sum(self, e):
        bare, self._bare_next = self._bare_next or e is self._top, False
        bound = tuple(lim[0] for lim in e.limits)
        outer = self._layout
        target = self.layout_of(e)
        try:
            factors = sp.Mul.make_args(e.function)
            code = self.correlate(e, target)
            if code is not None:
                return code
            tensors = [self._view(f) if isinstance(f, sp.Indexed) and shifted(f) else f
                       for f in factors if isinstance(f, sp.Indexed)]
            if len(tensors) == len(factors) and len(tensors) >= 2 and not self.hadamard(tensors) \
                    and all(isinstance(i, sp.Idx) for t in tensors for i in t.indices):
                self._layout = target + bound
                code, infix = self._contraction(e, tensors, target, bound)
                return f"({code})" if infix and not bare else code
            self._layout = self._reduction_layout(e.function, target, bound)
            body = self._print(e.function)
            have = self.layout_of(e.function)
            axes = tuple(have.index(k) for k in bound if k in have)
            if len(axes) < len(bound):  # a bound index the body does not carry: Σ_k c = K c
                missing = [k for k in bound if k not in have]
                count = self._scalar(sp.Mul(*[extent(k) for k in missing]))
                body = f"{count}*{body if _atomic(e.function) else '(' + body + ')'}"
                if not axes:
                    return body
            return self.reduce(body if _atomic(e.function) else f"({body})", "sum", axes, len(have))
        finally:
            self._layout = outer

    def _contraction(self, e, tensors, target, bound):
        """Σ of a product of tensors: ``@`` for a GEMM or GEMV, else einsum with our own subscripts.

        Returns (code, whether it is an infix ``@`` expression).
        """
        c = contraction(e, target)
        if c is not None:
            return self.matmul(*self._factors(c), c.kind)
        letters = self._letters(tuple(i for t in tensors for i in t.indices))
        subs = ",".join("".join(letters[i] for i in t.indices) for t in tensors)
        out = "".join(letters[i] for i in target)
        names = ", ".join(str(t.base.label) for t in tensors)
        big = any(len(t.indices) > 3 for t in tensors)
        return self.einsum(f"'{subs}->{out}'", names, big), False

    def matmul(self, left: str, right: str, kind: str) -> tuple:
        """(code, whether it is an infix ``@`` expression) of a matrix product ("gemm") or matrix–vector ("gemv")."""
        return f"{left} @ {right}", True

    def add_product(self, e) -> str | None:
        """A backend's one call for c + A B (a matrix product plus a term that broadcasts over it), or None."""
        return None

    def _product_plus(self, e):
        """(c, A code, B code) when e is c + Σ_k A_pk B_kq over the whole layout, c broadcasting as it is."""
        target = self.layout_of(e)
        if len(e.args) != 2 or len(target) != 2:
            return None
        sums = [a for a in e.args if isinstance(a, sp.Sum)]
        c = contraction(sums[0], target) if len(sums) == 1 else None
        other = next(a for a in e.args if a is not sums[0]) if sums else None
        if c is None or c.kind != "gemm" or not other.has(sp.Indexed) or self._needs_pad(other, target):
            return None
        return (self._print(other), *self._factors(c))

    def _factors(self, c) -> tuple:
        """The two operands of a matrix product (``ir.Contraction``), each printed in its own layout."""
        outer = self._layout
        try:
            self._layout = c.left_layout
            left = self._print(c.left)
            self._layout = c.right_layout
            return left, self._print(c.right)
        finally:
            self._layout = outer

    def hadamard(self, tensors) -> bool:
        """True to print Σ of a product of tensors over the same indices as a product, then a sum (not einsum)."""
        return False

    def correlate(self, e, target) -> str | None:
        """A backend's own convolution for a Sum that is a batched correlation (``ir.correlation``), or None."""
        return None

    def einsum(self, subscripts: str, operands: str, big: bool) -> str:
        return f"{self.fn('einsum')}({subscripts}, {operands})"

    def _print_MaxWithZeros(self, e):
        return self._print_MaxOver(e)

    def _window(self, body):
        """``body`` as the candidates of a max, and the layout its code is in: a read that falls off its
        tensor (padding) makes the candidate -inf, so padding never wins."""
        reads = [r for r in body.atoms(sp.Indexed) if shifted(r)]
        if not reads:
            return self._print(body), self.layout_of(body)
        self.imports.add("math")
        fill, self._fill = self._fill, "-math.inf"
        try:
            if isinstance(body, sp.Indexed):   # the read itself: padded with -inf
                return self._print(body), self.layout_of(body)
        finally:
            self._fill = fill
        target = self._layout
        # Any other body: where each read lands on its tensor (a view of ones, zero off the grid), else -inf.
        masks = []
        for r in sorted(reads, key=str):
            ones = sp.IndexedBase(self.ones_like(str(r.base.label)))[r.indices]
            masks.append(f"({self.pad(r, self._print(ones), target)} > 0)")
        code = self.pad(body, self._print(body), target)
        return f"{self.fn('where')}({' & '.join(masks)}, {code}, -math.inf)", target

    def _print_MaxOver(self, e):
        body, over = e.body, e.over
        outer = self._layout
        self._layout = self._reduction_layout(body, self.layout_of(e), over)
        try:
            code, have = (self._print(body), self.layout_of(body)) if isinstance(e, MaxWithZeros) \
                else self._window(body)
            return self.reduce(code if _atomic(body) else f"({code})", "max", tuple(have.index(k) for k in over), len(have))
        finally:
            self._layout = outer

    def _print_AtMax(self, e):
        """``v`` at the first arg-max of ``f`` over the window: a gather (a scatter is printed by ``scatter``)."""
        target, outer = self.layout_of(e), self._layout
        full = target + tuple(e.over)
        shape = "(" + ", ".join(self._scalar(extent(i)) for i in full) + ",)"
        self._layout = full
        try:
            window, have = self._window(e.body)
            if have != full:
                window = self.full(self.pad(e.body, window, full), shape)
            value = self._print(e.value)
            if self.layout_of(e.value) != full:
                value = self.full(self.pad(e.value, value, full), shape) if e.value.has(sp.Indexed) \
                    else self.filled(value, shape, self._like(e.body))
        finally:
            self._layout = outer
        return f"{self.helper('_at_max')}({value}, {window}, {len(e.over)})"

    def _print_OnGrid(self, e):
        """``[e ∈ {0..n−1}]`` as a mask of the index arrays (a bracket no read absorbed)."""
        expr, n = e.args
        layout = self.layout_of(e)
        shape = "(" + ", ".join(self._scalar(extent(m)) for m in layout) + ",)"
        arrays = {m: Code(f"{self.helper('_mesh')}({shape}, {self.like or ''})[{n}]") for n, m in enumerate(layout)}
        num, den = sp.fraction(sp.together(expr))
        outer, self._layout = self._layout, ()
        try:
            code = self._print(num.xreplace(arrays))
        finally:
            self._layout = outer
        top = self._scalar((n - 1) * den)
        tests = [f"({code} >= 0)", f"({code} <= {top})"]
        if den != 1:
            tests.append(f"({code} % {self._scalar(den)} == 0)")
        return f"({' & '.join(tests)})"

    # -- scatter to the arg-max -------------------------------------------------
    @staticmethod
    def _scatter_terms(term):
        """``c · Σ_B w · AtMax(Σ_n g_n Π δ, F, K)`` as [(B, c·w·AtMax(g_n), AtMax(Π δ, F, K)), …], or None."""
        bound, body = (), term
        sums = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.Sum)]
        if len(sums) == 1 and sums[0].function.has(AtMax):  # c · Σ_B (…): c joins the weight
            outer = sp.Mul(*[f for f in sp.Mul.make_args(term) if f is not sums[0]])
            bound, body = tuple(lim[0] for lim in sums[0].limits), outer * sums[0].function
        picks = [f for f in sp.Mul.make_args(body) if isinstance(f, AtMax)]
        if len(picks) != 1:
            return None
        pick = picks[0]
        weight = sp.Mul(*[f for f in sp.Mul.make_args(body) if f is not pick])
        parts = []
        # AtMax is evaluation at the arg-max: linear, AtMax(g·Πδ) = AtMax(g)·AtMax(Πδ).
        for value in sp.Add.make_args(sp.expand(pick.value)):
            deltas = [f for f in sp.Mul.make_args(value) if isinstance(f, sp.KroneckerDelta)]
            if not deltas:
                return None
            rest = sp.Mul(*[f for f in sp.Mul.make_args(value) if not isinstance(f, sp.KroneckerDelta)])
            gathered = rest if not rest.has(*pick.over) else AtMax(rest, pick.body, *pick.over)
            parts.append((bound, weight * gathered, AtMax(sp.Mul(*deltas), pick.body, *pick.over)))
        return parts

    def scatter(self, st):
        """``dX[t…] = Σ_B A · AtMax(Π_k δ(e_k, t_k), F, K)``: route A to the positions e_k at the arg-max of F.

        Several such terms over one arg-max are added: one ``_scatter_add`` each for the routes that
        differ, the weights of a route summed. Returns the code lines, or None when the statement is
        not of this form.
        """
        parts = []
        for t in sp.Add.make_args(sp.expand_mul(st.rhs, deep=False)):
            found = self._scatter_terms(t)
            if found is None:
                return None
            parts += found
        if len({(b, pick.body, pick.over) for b, _, pick in parts}) != 1:
            return None
        bound, _, first = parts[0]
        over = first.over
        routes = {}   # the deltas of a route -> (what they route, the summed weight)
        for _, weight, pick in parts:
            routed = {}
            for d in sp.Mul.make_args(pick.value):
                a, b = d.args
                t, expr = (b, a) if b in st.indices else (a, b) if a in st.indices else (None, None)
                if t is None or t in routed or expr.has(t):
                    return None
                routed[t] = expr
            old = routes.get(pick.value, (routed, sp.S.Zero))
            routes[pick.value] = (routed, old[1] + weight)
        if len({frozenset(r) for r, _ in routes.values()}) != 1:
            return None
        plain = tuple(i for i in st.indices if i not in next(iter(routes.values()))[0])
        layout = plain + tuple(k for k in bound if k not in plain)
        if any(not free_indices(w) <= set(layout) for _, w in routes.values()) \
                or not free_indices(first.body) - set(over) <= set(layout):
            return None
        outer = self._layout
        adds = []
        target = "(" + ", ".join(self._scalar(extent(i)) for i in st.indices) + ",)"
        try:
            self._layout = layout + over
            window, have = self._window(first.body)
            if have != layout + over:
                window = self.full(self.pad(first.body, window, layout + over),
                                   "(" + ", ".join(self._scalar(extent(i)) for i in layout + over) + ",)")
            self._fill = None
            shape = "(" + ", ".join(self._scalar(extent(i)) for i in layout) + ",)"
            mesh = {i: Code(f"at[{n}]") for n, i in enumerate(layout)}
            mesh.update({k: Code(f"best[{n}]") for n, k in enumerate(over)})
            for routed, weight in routes.values():
                self._layout = layout
                values = self.pad(weight, self._print(weight), layout)
                if not weight.has(sp.Indexed, sp.IndexedBase):
                    values = self.typed(values)   # a number: of the arrays' dtype
                self._layout = ()
                positions = [self._print(routed[t].xreplace(mesh)) if t in routed else f"at[{layout.index(t)}]"
                             for t in st.indices]
                adds.append(f"{self.helper('_scatter_add')}({target}, ({', '.join(positions)},), {values})")
        finally:
            self._layout, self._fill = outer, None
        return [
            f"at = {self.helper('_mesh')}({shape}, {self._like(st.rhs)})",
            f"best = {self.helper('_argmax')}({window}, {len(over)})",
            f"{st.name} = {' + '.join(adds)}",
        ]


def _axis_arg(axes: tuple, ndim: int):
    if len(axes) == ndim:
        return None
    return str(axes[0]) if len(axes) == 1 else "(" + ", ".join(map(str, axes)) + ")"


class NumPyKernelPrinter(ArrayPrinter):
    module = "np"
    column = 0
    backend = "NumPy"
    HELPERS = {**grid_code.NUMPY, **update_code.NUMPY}
    IN_PLACE = True

    def flip(self, code, axes):
        return f"np.flip({code}, axis={axes})"

    def einsum(self, subscripts, operands, big):
        # A contraction of strided windows needs BLAS (tensordot), not einsum's own loops.
        return f"np.einsum({subscripts}, {operands}{', optimize=True' if big else ''})"

    def reduce(self, code, op, axes, ndim):
        axis = _axis_arg(axes, ndim)
        return f"{code}.{op}()" if axis is None else f"{code}.{op}(axis={axis})"

    def permute(self, code, perm):
        return f"{code}.transpose{tuple(perm)}"

    def full(self, code, shape):
        return f"np.broadcast_to({code}, {shape}).copy()"

    def filled(self, code, shape, like):
        return f"np.full({shape}, {code}, dtype={like}.dtype)" if like else f"np.full({shape}, {code})"

    def clamp(self, code, low, high):
        if low is not None and high is not None:
            return f"np.clip({code}, {low}, {high})"
        return f"np.maximum({code}, {low})" if low is not None else f"np.minimum({code}, {high})"

    def matmul(self, left, right, kind):
        if kind != "gemm":
            return super().matmul(left, right, kind)
        return f"{self.helper('_matmul')}({left}, {right})", False

    def clamp_in_place(self, acc, low, high):
        return f"np.maximum({acc}, {low}, out={acc})" if low is not None else f"np.minimum({acc}, {high}, out={acc})"

    def copy_where(self, acc, value, cond, whole):
        # putmask runs 3-5x faster than copyto(where=) or where() on a mixed mask (measured: 52 vs 245 and
        # 162 µs on 128×512 float32), but pairs elements in order: only where nothing broadcasts.
        return f"{self.helper('_putmask')}({acc}, {cond}, {value})" if whole else \
            f"np.copyto({acc}, {value}, where={cond})"

    def identity(self, n):
        dtype = f", dtype={self.like}.dtype" if self.like else ""
        return f"np.eye({n}{dtype})"

    def typed(self, code):
        return f"{self.like}.dtype.type({code})" if self.like else code


class TorchKernelPrinter(ArrayPrinter):
    module = "torch"
    column = 1
    backend = "Torch"
    HELPERS = {**grid_code.TORCH, **update_code.TORCH}
    HELPER_IMPORTS = {"_scatter_add": {"math"}}

    def flip(self, code, axes):
        return f"{code}.flip({axes})"

    def add_product(self, e):
        # b + X @ W.T as one call (what nn.Linear runs): one pass, one new array.
        parts = self._product_plus(e)
        if parts is None:
            return None
        return f"torch.addmm({', '.join(parts)})"

    def hadamard(self, tensors):
        # torch.einsum reaches a batched matrix product through copies of both operands; a product and a
        # sum is one pass (NumPy's einsum does that pass itself).
        return len({frozenset(t.indices) for t in tensors}) == 1 and not any(shifted(t) for t in tensors)

    def correlate(self, e, target):
        # torch.nn.functional.conv1d/2d/3d: the derived contraction, spelled as the library's convolution.
        c = correlation(e, target)
        # A window over an extent the engine derived (a weight gradient's window is the whole output)
        # is a large kernel, slow in a library convolution: einsum (im2col and a GEMM) is faster there.
        if c is None or len(c.spatial) > 3 or any(extent(i) in self.derived for i in c.w.atoms(sp.Idx)):
            return None

        def arranged(t, axes):
            name = str(t.base.label)
            return name if axes == tuple(range(len(axes))) else self.permute(name, axes)

        def numbers(values):
            return "(" + ", ".join(self._scalar(v) for v in values) + ",)"

        w = arranged(c.w, c.w_axes)
        flips = tuple(2 + a for a, flip in enumerate(c.w_flip) if flip)
        if flips:
            w = f"{w}.flip({flips})"
        out = numbers([extent(o) for o in c.spatial])
        code = (f"{self.helper('_correlate')}({arranged(c.x, c.x_axes)}, {w}, {numbers(c.stride)}, "
                f"{numbers(c.dilation)}, {numbers(c.offset)}, {numbers(c.denom)}, {out})")
        layout = (c.batch, c.channel_out, *c.spatial)
        perm = tuple(layout.index(i) for i in target)
        return code if perm == tuple(range(len(perm))) else self.permute(code, perm)

    def reduce(self, code, op, axes, ndim):
        name = {"sum": "sum", "max": "amax"}[op]
        axis = _axis_arg(axes, ndim)
        return f"{code}.{name}()" if axis is None else f"{code}.{name}(dim={axis})"

    def permute(self, code, perm):
        return f"{code}.permute{tuple(perm)}"

    def full(self, code, shape):
        return f"torch.broadcast_to({code}, {shape}).clone()"

    def filled(self, code, shape, like):
        # as_tensor takes a Python number or a 0-d tensor (dL, Σ X) alike, and keeps autograd's graph.
        where = f", dtype={like}.dtype, device={like}.device" if like else ""
        return f"torch.as_tensor({code}{where}).expand({shape}).clone()"

    def clamp(self, code, low, high):
        args = ([f"min={low}"] if low is not None else []) + ([f"max={high}"] if high is not None else [])
        return f"torch.clamp({code}, {', '.join(args)})"

    def identity(self, n):
        like = f", dtype={self.like}.dtype, device={self.like}.device" if self.like else ""
        return f"torch.eye({n}{like})"

    def typed(self, code):
        # as_tensor, not new_tensor: the value may already be a 0-d tensor (a scalar statement).
        return f"torch.as_tensor({code}, dtype={self.like}.dtype, device={self.like}.device)" if self.like else code


PRINTERS = {"numpy": NumPyKernelPrinter, "torch": TorchKernelPrinter}


def imports(modules: set) -> list:
    """Import lines for the modules printed code refers to, in a fixed order."""
    return [IMPORTS[m] for m in ("math", "numbers", "np", "scipy", "torch") if m in modules]
