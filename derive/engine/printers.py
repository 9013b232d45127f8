"""Printers: kernel statements in index notation → whole-array NumPy or Torch code.

Every sub-expression has a *layout*: the indices it carries, in the order of
the statement's left-hand side followed by the indices of enclosing sums. A
tensor element prints as the array, transposed into that order; an operand
missing an axis gets ``None`` inserted so broadcasting lines it up; a sum of a
product of tensors prints as ``@`` (a GEMM) or ``einsum`` whose subscripts come
from our own index lists (never from SymPy's array printer, sympy#30395); any
other sum prints its body and reduces the trailing axes.

``ArrayPrinterMixin`` holds all of that. ``NumPyKernelPrinter`` and
``TorchKernelPrinter`` only name things (``np.where`` / ``torch.where``,
``axis`` / ``dim``, ``transpose`` / ``permute``).
"""
from __future__ import annotations

import string

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import PythonCodePrinter
from sympy.printing.pytorch import TorchPrinter

from .kernel import KernelError, _free
from .numerics import MaxOver


class Code(sp.Symbol):
    """A leaf holding code already printed (a padded operand)."""


def _atomic(e) -> bool:
    return isinstance(e, (sp.Indexed, sp.Symbol, sp.Function, sp.Sum, sp.Number, MaxOver))


class ArrayPrinterMixin:
    module = ""          # "np" or "torch"

    def __init__(self, settings=None):
        super().__init__({"fully_qualified_modules": True, "strict": True, "order": "none", **(settings or {})})
        self._layout = ()
        # Dimension and scalar symbols the printed code refers to (the kernel binds them).
        self.symbols_used = set()
        # An argument whose dtype and device new arrays (an identity) take.
        self.like = None
        # A contraction may print as a bare ``A @ B`` only as the whole right-hand side or as a
        # term of a sum; anywhere else ``@`` (which binds like ``*``) is parenthesised.
        self._top = None
        self._bare_next = False

    # -- backend vocabulary (overridden by subclasses) ---------------------
    def fn(self, name: str) -> str:
        return f"{self.module}.{name}"

    def reduce(self, code: str, op: str, axes: tuple, ndim: int) -> str:
        raise NotImplementedError

    def permute(self, code: str, perm: tuple) -> str:
        raise NotImplementedError

    def full(self, code: str, shape: str, like: str) -> str:
        raise NotImplementedError

    def clamp(self, code: str, bound: str, side: str) -> str:
        """Elementwise min (``side="max"``) or max (``side="min"``) of an array and a number."""
        raise NotImplementedError

    # -- elementwise functions SymPy's printers lack or spell per backend -------
    def _print_expm1(self, e):
        return f"{self.fn('expm1')}({self._print(e.args[0])})"

    def _print_log1p(self, e):
        return f"{self.fn('log1p')}({self._print(e.args[0])})"

    def _print_Abs(self, e):
        return f"{self.fn('abs')}({self._print(e.args[0])})"

    def _minmax(self, e, which):
        a, b = sorted(e.args, key=lambda x: x.is_number)
        if b.is_number:
            return self.clamp(self._print(a), self._print(b), "max" if which == "minimum" else "min")
        return f"{self.fn(which)}({self._print(a)}, {self._print(b)})"

    def _print_Min(self, e):
        return self._minmax(e, "minimum")

    def _print_Max(self, e):
        return self._minmax(e, "maximum")

    # -- layout ------------------------------------------------------------
    def layout_of(self, e) -> tuple:
        free = _free(e) if isinstance(e, sp.Basic) else set()
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
        self._layout = st.indices
        self._top = st.rhs
        code = self._print(st.rhs)
        have = self.layout_of(st.rhs)
        if have != st.indices:
            shape = "(" + ", ".join(self._scalar(i.upper + 1) for i in st.indices) + ",)"
            code = self.full(self.pad(st.rhs, code, st.indices) if have else code, shape, like=self._like(st.rhs))
        return f"{st.name} = {code}"

    def _like(self, e) -> str:
        tensors = sorted(e.atoms(sp.Indexed), key=str)
        return str(tensors[0].base.label) if tensors else ""

    def _print(self, expr, **kwargs):
        # Only arithmetic on Python numbers (sizes, eps) is plain Python; anything holding a tensor
        # (indexed, scalar, or a delta over indices) is printed as arrays.
        if isinstance(expr, sp.Expr) and not expr.is_Atom and not expr.has(sp.Indexed, sp.IndexedBase, Code, sp.Idx):
            return self._scalar(expr)
        return super()._print(expr, **kwargs)

    def _scalar(self, e) -> str:
        """Arithmetic on Python scalars (dimensions, eps) stays plain Python."""
        self.symbols_used |= e.free_symbols
        return _PY.doprint(e)

    def _print_Symbol(self, e):
        self.symbols_used.add(e)
        return e.name

    # -- leaves --------------------------------------------------------------
    def _print_Code(self, e):
        return e.name

    def _print_Idx(self, e):
        raise KernelError(f"index {e} used as a value")

    def _print_Indexed(self, e):
        name = str(e.base.label)
        natural = tuple(e.indices)
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

    # -- elementwise ---------------------------------------------------------
    def _bare_term(self, a):
        if not isinstance(a, sp.Sum):
            return a
        self._bare_next = True
        try:
            return Code(self._print(a))
        finally:
            self._bare_next = False

    def _print_Add(self, e):
        # Positive terms first: ``X - T`` reads better than ``-T + X``.
        ops = [self._bare_term(a) for a in self._operands(e)]
        ops = sorted(ops, key=lambda a: a.could_extract_minus_sign())
        return super()._print_Add(sp.Add(*ops, evaluate=False))

    def _print_Mul(self, e):
        pieces = [a for a in e.args if isinstance(a, sp.Piecewise)]
        if len(pieces) == 1:
            # c · Piecewise((a, p), (b, True)) = Piecewise((c a, p), (c b, True)): one where(), no product.
            rest = e / pieces[0]
            return self._print(sp.Piecewise(*[(rest * v, c) for v, c in pieces[0].args]))
        ops = self._operands(e)
        return super()._print_Mul(e if ops == list(e.args) else sp.Mul(*ops))

    def _print_Pow(self, e, rational=False):
        base, exp = e.args
        b = self._print(base)
        if exp == sp.S.Half:
            return f"{self.fn('sqrt')}({b})"
        if exp == -sp.S.Half:
            return f"1/{self.fn('sqrt')}({b})"
        b = b if _atomic(base) else f"({b})"
        if exp == -1:
            return f"1/{b}"
        if exp.is_Integer and exp > 0:
            return f"{b}**{self._print(exp)}"
        # A negative or fractional exponent needs parentheses: x**3/2 would be (x**3)/2.
        return f"{b}**({self._print(exp)})"

    def _print_Piecewise(self, e):
        target = self.layout_of(e)
        if e.args[-1].cond != sp.true:
            raise KernelError(f"Piecewise without an 'otherwise' branch: {e}")
        code = self._branch(e.args[-1].expr, target)
        for value, cond in reversed(e.args[:-1]):
            code = f"{self.fn('where')}({self._cond(cond, target)}, {self._branch(value, target)}, {code})"
        return code

    def _branch(self, v, target):
        return self.pad(v, self._print(v), target) if v.has(sp.Indexed) else self._print(v)

    def _cond(self, c, target):
        if isinstance(c, sp.And):
            return " & ".join(f"({self._cond(a, target)})" for a in c.args)
        if isinstance(c, sp.Or):
            return " | ".join(f"({self._cond(a, target)})" for a in c.args)
        if isinstance(c, sp.core.relational.Relational):
            lhs, rhs = (self._branch(a, target) for a in c.args)
            return f"{lhs} {c.rel_op} {rhs}"
        raise KernelError(f"condition {c} cannot be printed")

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
            tensors = [f for f in factors if isinstance(f, sp.Indexed)]
            if len(tensors) == len(factors) and len(tensors) >= 2:
                self._layout = target + bound
                code, infix = self._contraction(tensors, target, bound)
                return f"({code})" if infix and not bare else code
            self._layout = self._reduction_layout(e.function, target, bound)
            body = self._print(e.function)
            have = self.layout_of(e.function)
            axes = tuple(have.index(k) for k in bound if k in have)
            return self.reduce(body if _atomic(e.function) else f"({body})", "sum", axes, len(have))
        finally:
            self._layout = outer

    def _contraction(self, tensors, target, bound):
        """Σ of a product of tensors: ``@`` for a GEMM or GEMV, else einsum with our own subscripts.

        Returns (code, whether it is an infix ``@`` expression).
        """
        if len(tensors) == 2 and len(bound) == 1 and len(target) == 2:
            k = bound[0]
            a, b = tensors
            if k in a.indices and k in b.indices and all(len(t.indices) == 2 for t in tensors):
                left = a if target[0] in a.indices else b
                right = b if left is a else a
                if set(left.indices) == {target[0], k} and set(right.indices) == {k, target[1]}:
                    self._layout = (target[0], k)
                    lcode = self._print(left)
                    self._layout = (k, target[1])
                    rcode = self._print(right)
                    return f"{lcode} @ {rcode}", True
        if len(tensors) == 2 and len(bound) == 1 and len(target) == 1:
            # Σ_k A_pk v_k: a matrix-vector product.
            k = bound[0]
            mats = [t for t in tensors if len(t.indices) == 2]
            vecs = [t for t in tensors if tuple(t.indices) == (k,)]
            if len(mats) == 1 and len(vecs) == 1 and set(mats[0].indices) == {target[0], k}:
                self._layout = (target[0], k)
                return f"{self._print(mats[0])} @ {vecs[0].base.label}", True
        letters = self._letters(tuple(i for t in tensors for i in t.indices))
        subs = ",".join("".join(letters[i] for i in t.indices) for t in tensors)
        out = "".join(letters[i] for i in target)
        names = ", ".join(str(t.base.label) for t in tensors)
        return f"{self.fn('einsum')}('{subs}->{out}', {names})", False

    def _print_MaxOver(self, e):
        body, k = e.args
        outer = self._layout
        self._layout = self._reduction_layout(body, self.layout_of(e), (k,))
        try:
            code = self._print(body)
            have = self.layout_of(body)
            return self.reduce(code if _atomic(body) else f"({code})", "max", (have.index(k),), len(have))
        finally:
            self._layout = outer


class _ScalarPrinter(PythonCodePrinter):
    """Plain Python for scalar arithmetic; ``math`` functions."""

    def _print_Symbol(self, e):
        return e.name


_PY = _ScalarPrinter({"fully_qualified_modules": True})


def _axis_arg(axes: tuple, ndim: int):
    if len(axes) == ndim:
        return None
    return str(axes[0]) if len(axes) == 1 else "(" + ", ".join(map(str, axes)) + ")"


class NumPyKernelPrinter(ArrayPrinterMixin, NumPyPrinter):
    module = "np"
    imports = "import numpy as np"

    def _module_format(self, fqn, register=True):
        return "np." + fqn.split(".", 1)[1] if fqn.startswith("numpy.") else super()._module_format(fqn, register)

    def reduce(self, code, op, axes, ndim):
        axis = _axis_arg(axes, ndim)
        return f"{code}.{op}()" if axis is None else f"{code}.{op}(axis={axis})"

    def permute(self, code, perm):
        return f"{code}.transpose{tuple(perm)}"

    def full(self, code, shape, like):
        return f"np.broadcast_to({code}, {shape}).copy()"

    def clamp(self, code, bound, side):
        return f"np.{'minimum' if side == 'max' else 'maximum'}({code}, {bound})"

    def _print_KroneckerDelta(self, e):
        dtype = f", dtype={self.like}.dtype" if self.like else ""
        return f"np.eye({self._scalar(e.args[0].upper + 1)}{dtype})"


class TorchKernelPrinter(ArrayPrinterMixin, TorchPrinter):
    module = "torch"
    imports = "import torch"

    def reduce(self, code, op, axes, ndim):
        name = {"sum": "sum", "max": "amax"}[op]
        axis = _axis_arg(axes, ndim)
        return f"{code}.{name}()" if axis is None else f"{code}.{name}(dim={axis})"

    def permute(self, code, perm):
        return f"{code}.permute{tuple(perm)}"

    def full(self, code, shape, like):
        return f"torch.broadcast_to({code}, {shape}).clone()"

    def clamp(self, code, bound, side):
        return f"torch.clamp({code}, {side}={bound})"

    def _print_KroneckerDelta(self, e):
        like = f", dtype={self.like}.dtype, device={self.like}.device" if self.like else ""
        return f"torch.eye({self._scalar(e.args[0].upper + 1)}{like})"

    def _print_Relational(self, e):
        return f"{self._print(e.lhs)} {e.rel_op} {self._print(e.rhs)}"


PRINTERS = {"numpy": NumPyKernelPrinter, "torch": TorchKernelPrinter}
