"""Rendering: lowered array operations (``arrays.py``) → code, through one backend's table (``backends/``).

The renderer walks the operations and asks the backend's ``spell`` table for
each one, passing the code of its operands; it knows nothing of NumPy or
Torch. Arithmetic on Python numbers (sizes, scalar hyper-parameters, ``√2``,
``π``) prints through Python's ``math``, which keeps float32 arrays float32.
The modules and helpers the code refers to are collected, and the template
imports exactly those.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from . import arrays as A
from .errors import PrintError
from .text import index_text, positive_first

# SymPy function → Python's spelling for numbers (None: not available).
PYTHON_FUNCTIONS = {
    "exp": "math.exp", "log": "math.log", "expm1": "math.expm1", "log1p": "math.log1p",
    "sin": "math.sin", "cos": "math.cos", "tan": "math.tan", "asin": "math.asin", "acos": "math.acos",
    "atan": "math.atan", "sinh": "math.sinh", "cosh": "math.cosh", "tanh": "math.tanh", "asinh": "math.asinh",
    "acosh": "math.acosh", "atanh": "math.atanh", "Abs": "abs", "erf": "math.erf", "erfc": "math.erfc",
    "Erfc": "math.erfc", "loggamma": "math.lgamma", "gamma": "math.gamma", "atan2": "math.atan2",
    "sqrt": "math.sqrt",
}
CONSTANTS = {"Pi": "math.pi", "Exp1": "math.e"}
IMPORTS = {"math": "import math", "numbers": "import numbers"}


def _module_of(spelling: str) -> str:
    return spelling.split(".", 1)[0] if "." in spelling else ""


class _Arithmetic(StrPrinter):
    """What numbers and elementwise arrays share: numbers, constants, powers, a function table."""

    printmethod = "_kernel_code"  # not Indexed._sympystr, which prints X[s, m]
    backend = "Python"

    def __init__(self, imports: set, functions: dict):
        super().__init__({"order": "none"})
        self.imports, self.functions = imports, functions

    def spelling(self, name: str) -> str:
        spelled = self.functions.get(name)
        if spelled is None:
            raise PrintError(f"{name} has no {self.backend} spelling")
        if _module_of(spelled):
            self.imports.add(_module_of(spelled))
        return spelled

    def _as_ordered_terms(self, expr, order=None):
        return positive_first(super()._as_ordered_terms(expr, order))

    def _print_Float(self, e):
        return repr(float(e))

    def _print_Rational(self, e):
        return f"{e.p}/{e.q}"

    def _print_NumberSymbol(self, e):
        self.imports.add("math")
        return CONSTANTS[type(e).__name__]

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
        if name == "atan2":
            return f"{self.spelling(name)}({', '.join(self._print(a) for a in e.args)})"
        if len(e.args) != 1:
            raise PrintError(f"{name} has no {self.backend} spelling")
        return f"{self.spelling(name)}({self._print(e.args[0])})"

    def _atomic(self, e) -> bool:
        return isinstance(e, (sp.Symbol, sp.Function)) or (isinstance(e, sp.Integer) and e >= 0)

    LOGIC = {"and": " and ", "or": " or ", "not": "not "}   # Python's, on numbers

    def _print_Relational(self, e):
        return f"{self._print(e.lhs)} {e.rel_op} {self._print(e.rhs)}"

    def _print_And(self, e):
        return self.LOGIC["and"].join(f"({self._print(a)})" for a in e.args)

    def _print_Or(self, e):
        return self.LOGIC["or"].join(f"({self._print(a)})" for a in e.args)

    def _print_Not(self, e):
        return f"{self.LOGIC['not']}({self._print(e.args[0])})"

    def _print_Pow(self, e, rational=False):
        base, exp = e.args
        b = self._print(base)
        if exp == sp.S.Half:
            return f"{self.spelling('sqrt')}({b})"
        if exp == -sp.S.Half:
            return f"1/{self.spelling('sqrt')}({b})"
        # A negative number or a fraction (2/3 prints as a quotient) is a base only inside parentheses.
        b = b if self._atomic(base) else f"({b})"
        if exp == -1:
            return f"1/{b}"
        if exp.is_Integer and exp > 0:
            return f"{b}**{self._print(exp)}"
        # A negative or fractional exponent needs parentheses: x**3/2 would be (x**3)/2.
        return f"{b}**({self._print(exp)})"

    def _print_Piecewise(self, e):
        """A select on hyper-parameters alone, between whole operands: a Python conditional."""
        if any(c.atoms(A.Slot) for _, c in e.args):
            raise PrintError("an elementwise select is a Where operation, not a Map")
        code = self._print(e.args[-1].expr)
        for value, cond in reversed(e.args[:-1]):
            code = f"({self._print(value)} if {self._print(cond)} else {code})"
        return code


class ScalarPrinter(_Arithmetic):
    """Plain Python for arithmetic on numbers and scalar symbols: ``math`` functions, ``max``, ``a if c else b``."""

    def __init__(self, imports: set):
        super().__init__(imports, PYTHON_FUNCTIONS)

    def _print_Symbol(self, e):
        return e.name

    def _print_Max(self, e):
        return "max(" + ", ".join(self._print(a) for a in e.args) + ")"

    def _print_Min(self, e):
        return "min(" + ", ".join(self._print(a) for a in e.args) + ")"

    def _print_floor(self, e):
        num, den = sp.fraction(sp.together(e.args[0]))
        if num.is_integer and den.is_integer and den != 1:
            return f"({self._print(num)})//({self._print(den)})"
        self.imports.add("math")
        return f"math.floor({self._print(e.args[0])})"

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



class MapPrinter(_Arithmetic):
    """A ``Map``'s expression: slots are their operations' code, functions the backend's, numbers Python's."""

    def __init__(self, renderer, slots: dict):
        super().__init__(renderer.imports, renderer.backend.functions)
        self.r, self.slots, self.backend = renderer, slots, renderer.backend.title
        self._bare = set()   # slots that need no parentheses where they stand

    def _print(self, expr, **kwargs):
        # Arithmetic on Python numbers (sizes, eps, √2) is plain Python.
        if isinstance(expr, sp.Expr) and not expr.atoms(A.Slot) \
                and not isinstance(expr, (sp.Symbol, sp.Integer, sp.Float)):
            return self.r.scalar(expr)
        return super()._print(expr, **kwargs)

    def _print_Symbol(self, e):
        return self.r.scalar(e)

    def _print_Slot(self, e):
        code, infix = self.r.code(self.slots[e])
        return code if not infix or e in self._bare else f"({code})"

    def _print_Add(self, e, order=None):
        # A matrix product printed infix (A @ B) binds tighter than + and -: a term needs no parentheses.
        terms = {a for a in e.args if isinstance(a, A.Slot)}
        self._bare |= terms
        try:
            return super()._print_Add(e, order)
        finally:
            self._bare -= terms

    def _atomic(self, e) -> bool:
        return super()._atomic(e) and not (isinstance(e, A.Slot) and self.r.code(self.slots[e])[1])

    LOGIC = {"and": " & ", "or": " | ", "not": "~"}   # elementwise on boolean arrays

    def _print_Mod(self, e):
        # % binds like *: a sum on either side needs parentheses ((u - 1) % 2).
        return " % ".join(self.parenthesize(a, PRECEDENCE["Mul"] + 1) for a in e.args)


class Renderer:
    """Code for the operations of one kernel file in one backend."""

    def __init__(self, backend):
        self.backend = backend
        self.imports = {backend.module}
        self.helpers = set()
        self._scalar = ScalarPrinter(self.imports)
        self._cache = {}

    # -- what the table's entries call ------------------------------------------------
    def helper(self, name: str) -> str:
        """Use the helper ``name`` (a function of the backend's helper module); the file then imports it."""
        self.helpers.add(name)
        return name

    def scalar(self, e) -> str:
        return self._scalar.doprint(e)

    @staticmethod
    def _tuple(codes) -> str:
        return "(" + ", ".join(codes) + ("," if len(codes) == 1 else "") + ")"

    def numbers(self, values) -> str:
        """A tuple of Numbers (strides, extents), as Python: ``(stride, stride)``."""
        return self._tuple([self.value(v) for v in values])

    def shape(self, exprs) -> str:
        """A tuple of SymPy sizes, as Python: ``(S, C, Ho, Wo)``."""
        return self._tuple([self.scalar(e) for e in exprs])

    def grid(self, axes) -> str:
        """A ``GridView``'s axes: ``(((c, …,), d, q), …,)``."""
        parts = []
        for coeffs, const, denom in axes:
            parts.append(f"(({', '.join(self.scalar(c) for c in coeffs)}{',' if len(coeffs) == 1 else ''}), "
                         f"{self.scalar(const)}, {self.scalar(denom)})")
        return f"({', '.join(parts)},)"

    @staticmethod
    def axis(axes) -> str | None:
        """A reduction's axes argument: one number, or a tuple."""
        if axes is None:
            return None
        return str(axes[0]) if len(axes) == 1 else "(" + ", ".join(map(str, axes)) + ")"

    def receiver(self, op) -> str:
        """An operand a method is called on, that is subscripted, or of an infix product: parenthesised unless
        atomic."""
        code, infix = self.code(op)
        return f"({code})" if infix else code

    # -- operations --------------------------------------------------------------------
    def value(self, op) -> str:
        """An operation's code where any expression may stand (a whole right-hand side, an argument)."""
        return self.code(op)[0]

    def code(self, op) -> tuple:
        """(code, whether it must be parenthesised to be an operand)."""
        key = id(op)
        if key not in self._cache:
            self._cache[key] = (op, self._code(op))
        return self._cache[key][1]

    def _code(self, op) -> tuple:
        s = self.backend.spell
        if isinstance(op, A.Name):
            return op.name, False
        if isinstance(op, A.Number):
            code = self.scalar(op.expr)
            return code, not (isinstance(op.expr, (sp.Symbol, sp.Float)) or (op.expr.is_Integer and op.expr >= 0)
                              or isinstance(op.expr, sp.Function))
        if isinstance(op, A.MinusInfinity):
            self.imports.add("math")
            return "-math.inf", True
        if isinstance(op, A.Map):
            if isinstance(op.expr, A.Slot):
                return self.code(dict(op.args)[op.expr])
            code = MapPrinter(self, dict(op.args)).doprint(op.expr)
            call = isinstance(op.expr, sp.Function) or (isinstance(op.expr, sp.Pow) and op.expr.exp == sp.S.Half)
            return code, not call
        if isinstance(op, A.Permute):
            key = "transpose" if op.perm == (1, 0) else "permute"
            return s[key](self, self.receiver(op.x), op.perm), False
        if isinstance(op, A.Expand):
            slots = ", ".join(":" if keep else "None" for keep in op.slots)
            return f"{self.receiver(op.x)}[{slots}]", False
        if isinstance(op, A.Take):
            index = ", ".join(":" if i is None else self.value(i) for i in op.index)
            return f"{self.receiver(op.x)}[{index}]", False
        if isinstance(op, A.Item):
            return f"{self.receiver(op.x)}[{op.n}]", False
        if isinstance(op, A.MatMul):
            return s[op.kind](self, self.receiver(op.a), self.receiver(op.b)), op.kind in self.backend.infix
        if isinstance(op, A.Reduce):
            axes = None if len(op.axes) == op.ndim else op.axes
            return s[op.op](self, self.receiver(op.x), axes), False
        kind = type(op).__name__
        if kind not in s:
            raise PrintError(f"the {self.backend.title} backend has no spelling for {kind}")
        return s[kind](self, op), kind in self.backend.infix

    # -- instructions ------------------------------------------------------------------
    def instruction(self, ins) -> str:
        s = self.backend.spell
        if isinstance(ins, A.Assign):
            target = ", ".join(ins.target) if isinstance(ins.target, tuple) else ins.target
            return f"{target} = {self.value(ins.value)}"
        if isinstance(ins, A.Update):
            return f"{ins.target} {ins.op}= {self.value(ins.value)}"
        if isinstance(ins, (A.ApplyInPlace, A.ClampInPlace, A.SelectInPlace)):
            return s[type(ins).__name__](self, ins)
        if isinstance(ins, A.Shapes):
            names = ", ".join(ins.names) + ("," if len(ins.names) == 1 else "")
            if ins.axes is None:
                return f"{names} = {ins.array}.shape"
            return "\n".join(f"{n} = {ins.array}.shape[{a}]" for n, a in zip(ins.names, ins.axes))
        if isinstance(ins, A.ZeroUpstream):
            zero = self.helper("_zeros") + f"({ins.like}, {self.shape(ins.shape)})" if ins.shape else "0.0"
            return f"if {ins.name} is None:\n    {ins.name} = {zero}"
        if isinstance(ins, A.Promote):
            names = ", ".join(ins.names) + ("," if len(ins.names) == 1 else "")
            return f"{names} = {self.helper('_floats')}({', '.join(ins.names)})"
        if isinstance(ins, A.CheckLabels):
            return (f"{ins.name} = {self.helper('_labels')}({ins.name}, {self.scalar(ins.extent)}, "
                    f"{ins.kernel + ': ' + ins.name!r})")
        if isinstance(ins, A.CheckInteger):
            self.imports.add("numbers")
            return (f"if not isinstance({ins.name}, numbers.Integral) or {ins.name} < {ins.least}:\n"
                    f'    raise ValueError(f"{ins.kernel}: {ins.name} must be an integer >= {ins.least}, '
                    f'got {{{ins.name}!r}}")')
        if isinstance(ins, A.Extent):
            code = self.scalar(ins.formula)
            given = _values(ins.formula.free_symbols)
            if ins.check:
                return (f"if {ins.dim} != {code}:\n"
                        f'    raise ValueError(f"{ins.kernel}: {ins.dim} is {{{ins.dim}}} in the arrays given, '
                        f'but {ins.rule} = {{{code}}} for {given}")')
            return (f"{ins.dim} = {code}\n"
                    f"if {ins.dim} < 1:\n"
                    f'    raise ValueError(f"{ins.kernel}: {ins.rule} = {{{ins.dim}}} for {given}; '
                    f'it must be at least 1")')
        if isinstance(ins, A.AxisSize):
            return self._axis_size(ins)
        if isinstance(ins, A.Accumulate):
            names = ", ".join(ins.results) + ("," if len(ins.results) == 1 else "")
            grads = ", ".join(f"{r!r}: {r}" for r in ins.results)
            return f"{names} = {self.helper('_accumulate')}(into, {{{grads}}})"
        raise TypeError(f"no rendering for {type(ins).__name__}")

    def _axis_size(self, ins) -> str:
        """Solve a dimension from an axis sized by an expression of it, or check such an axis (or an
        extent the kernel makes) — each failure one ValueError line naming the kernel."""
        rule = index_text(ins.formula)
        if ins.array is None:
            code = self.scalar(ins.formula)
            given = _values(ins.formula.free_symbols)
            return (f"if {code} < 1:\n"
                    f'    raise ValueError(f"{ins.kernel}: {rule} = {{{code}}} for {given}; it must be at least 1")')
        if ins.solve is None:
            code = self.scalar(ins.formula)
            given = "" if isinstance(ins.formula, sp.Symbol) else f" for {_values(ins.formula.free_symbols)}"
            return (f"if {ins.array}.shape[{ins.axis}] != {code}:\n"
                    f'    raise ValueError(f"{ins.kernel}: axis {ins.axis} of {ins.array} has '
                    f'{{{ins.array}.shape[{ins.axis}]}} elements, but {rule} = {{{code}}}{given}")')
        n, P = sp.Symbol(ins.size, integer=True), ins.solve
        a, b = sp.Poly(ins.formula, P).all_coeffs()
        others = ins.formula.free_symbols - {P}
        given = f" for {_values(others)}" if others else ""
        return (f"{P} = {self.scalar(sp.floor((n - b) / a))}\n"
                f"if {P} < 1 or {self.scalar(ins.formula)} != {ins.size}:\n"
                f'    raise ValueError(f"{ins.kernel}: axis {ins.axis} of {ins.array} has {{{ins.size}}} elements: '
                f'it must be {rule} for a whole {P} >= 1{given}")')

    def function(self, name: str) -> str:
        """The backend's spelling of an elementwise function (its module imported)."""
        return MapPrinter(self, {}).spelling(name)

    def lines(self, instructions) -> list:
        return [self.instruction(i) for i in instructions]


def _values(symbols) -> str:
    """``K={K}, L={L}``: an f-string part naming each size or hyper-parameter a message's formula reads."""
    return ", ".join(f"{s}={{{s}}}" for s in sorted(map(str, symbols)))


def imports(backend, modules: set) -> list:
    """Import lines for the modules printed code refers to, in a fixed order."""
    table = {**IMPORTS, **backend.imports}
    return [table[m] for m in ("math", "numbers", "np", "scipy", "torch") if m in modules and m in table]
