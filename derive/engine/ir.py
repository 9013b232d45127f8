"""Kernels as data: the bottom layer of the engine.

A ``Kernel`` lists its array arguments (with symbolic shapes), scalar
hyper-parameters, statements ``lhs[indices] = rhs`` whose right-hand sides are
SymPy expressions (contractions are ``Sum`` of products, elementwise work is
everything else), and the names it returns.

Everything here depends on SymPy alone, and every other layer may use it: the
nodes the engine adds to SymPy (``MaxOver`` and ``MaxWithZeros``, ``AtMax``,
``OnGrid``), index helpers and index expressions (``affine``). What a kernel's
statements become on whole arrays is ``arrays.py`` (made by ``lower.py``, which
reads structure through ``recognise.py``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import sympy as sp


class Sum(sp.Sum):
    """SymPy's ``Sum``, except that a ``Piecewise`` inside a nested sum, conditioned on that sum's index, stays there,
    and that no ``Piecewise`` takes in a delta of index expressions.

    SymPy folds every ``Piecewise`` holding the outer sum's index to the top of its body, and its fold reaches into
    nested sums: ``Σ_s dY_s Σ_j [X_sj > 0] δ_jq`` became ``[X_sj > 0] Σ_s dY_s Σ_j δ_jq``, the condition's j out of
    its sum (a ReLU inside a sum was refused: "leaves the indices j free"). Such a ``Piecewise`` is masked while
    SymPy builds the sum. Every sum the engine makes is one of these, and SymPy rebuilds sums through their class.
    """

    def __new__(cls, function, *symbols, **assumptions):
        function = sp.sympify(function)
        masks = {p: sp.Dummy() for inner in function.atoms(sp.Sum) for p in inner.function.atoms(sp.Piecewise)
                 if p.has(*inner.variables)}
        selects = function.atoms(sp.Piecewise)
        if selects and any(not all(is_plain(a) for a in d.args)
                           for d in function.xreplace({p: sp.Dummy() for p in selects}).atoms(sp.KroneckerDelta)):
            # A delta of index expressions waits for an enclosing sum to sift it: folded into a select, no sum
            # would see it (the gradient of ReLU(conv(X)) through X).
            masks.update({p: sp.Dummy() for p in selects})
        obj = super().__new__(cls, function.xreplace(masks) if masks else function, *symbols, **assumptions)
        if masks and isinstance(obj, Sum):
            # Put them back without building the sum again (that would fold them once more).
            obj._args = (obj._args[0].xreplace({d: p for p, d in masks.items()}),) + obj._args[1:]
        return obj


def powered(latex: str, exp) -> str:
    """A function's LaTeX raised to ``exp`` (SymPy's printer passes the exponent of ``f(x)**n`` to ``f``)."""
    return latex if exp is None else r"\left(%s\right)^{%s}" % (latex, exp)


class MaxOver(sp.Function):
    """``max_{k,…} expr``: the maximum of ``expr`` over the indices ``k, …`` (a reduction).

    A read at an index expression that falls outside its tensor (padding) is
    not a candidate: padding never wins a max.
    """

    @property
    def body(self):
        return self.args[0]

    @property
    def over(self) -> tuple:
        return tuple(self.args[1:])

    def _eval_derivative(self, x):
        # d/dx max_k f(k) = f'(k*) at the first maximiser k*: the gradient goes to the arg-max.
        inner = sp.diff(self.body, x)
        return sp.S.Zero if inner == 0 else AtMax(inner, self.body, *self.over)

    def _latex(self, printer, exp=None):
        ks = ",".join(printer._print(k) for k in self.over)
        return powered(r"\max_{%s} %s" % (ks, printer._print(self.body)), exp)

    def _index_text(self, printer):
        return f"max_{''.join(map(str, self.over))} {printer._print(self.body)}"


class MaxWithZeros(MaxOver):
    """``max_{k…} expr`` over every position, a read off the grid counting as the zero it reads.

    The numerics pass shifts ``Σ_k exp(u)`` by this maximum: the sum counts off-grid reads as
    exp(0), so its maximum must count them too (otherwise exp(0 − m) can overflow).
    """


class AtMax(sp.Function):
    """``AtMax(g, f, k, …)``: ``g`` at the first maximiser of ``f`` over ``k, …`` (row-major ties, as PyTorch)."""

    @property
    def value(self):
        return self.args[0]

    def _eval_derivative(self, x):
        # The arg-max is locally constant (a tie is a set of measure zero): the derivative is taken at it.
        inner = sp.diff(self.value, x)
        return sp.S.Zero if inner == 0 else AtMax(inner, self.body, *self.over)

    @property
    def body(self):
        return self.args[1]

    @property
    def over(self) -> tuple:
        return tuple(self.args[2:])

    def _latex(self, printer, exp=None):
        ks = ",".join(printer._print(k) for k in self.over)
        return powered(r"\left. %s \right|_{%s = \operatorname{argmax} %s}" % (
            printer._print(self.value), ks, printer._print(self.body)), exp)

    def _index_text(self, printer):
        ks = ",".join(map(str, self.over))
        return f"({printer._print(self.value)} at {ks} = argmax {printer._print(self.body)})"


class OnGrid(sp.Function):
    """The Iverson bracket ``[e ∈ {0, …, n−1}]``: 1 where the index expression ``e`` is an integer in range, else 0.

    Sifting a shifted delta (Σ_h δ(σh + i − p, u) f(h)) leaves one; a read
    ``T[…, e, …]`` on an axis of extent n absorbs it, since reads off the grid are zero.
    """

    nargs = 2

    def _eval_power(self, exp):
        # [c]·[c] = [c]: chaining through a gate can multiply one bracket in twice.
        if exp.is_Integer and exp > 0:
            return self
        return None

    def _latex(self, printer, exp=None):
        e, n = self.args
        return powered(r"\left[ %s \in \{0..%s\} \right]" % (printer._print(sp.together(e)), printer._print(n - 1)),
                       exp)

    def _index_text(self, printer):
        e, n = self.args
        return f"[{printer._print(sp.together(e))} ∈ 0..{printer._print(n - 1)}]"


@dataclass(frozen=True)
class Array:
    name: str
    dims: tuple
    # An array of positions (a saved arg-max), not of values: its representation is the backend's own.
    index: bool = False
    # An index array the caller passes (labels, token ids): integers in 0..of−1, checked, never made floating.
    of: object = None


@dataclass(frozen=True)
class Statement:
    lhs: object              # Indexed, or IndexedBase for a scalar
    rhs: sp.Expr
    # Gradient this statement serves ("dX"), so a caller may skip it.
    serves: str | None = None

    @property
    def name(self) -> str:
        return str(base_of(self.lhs).label)

    @property
    def indices(self) -> tuple:
        return tuple(self.lhs.indices) if isinstance(self.lhs, sp.Indexed) else ()

    def with_rhs(self, rhs) -> "Statement":
        return Statement(self.lhs, rhs, self.serves)


@dataclass
class Kernel:
    name: str
    arguments: list           # [Array], positional (a forward) or keyword-only after the upstream (a backward)
    scalars: list             # [notation.Scalar], keyword arguments
    statements: list          # [Statement]
    results: list             # names returned, in order
    # result name -> keyword flag that turns it off (``need_dX``)
    optional: dict = field(default_factory=dict)
    # A backward's first arguments: the upstream gradients, one per output (``dY``; ``dL`` for a loss, a scalar
    # defaulting to 1; ``dh, dc`` for an LSTM cell, each defaulting to None, meaning zero).
    upstreams: list = field(default_factory=list)
    upstream_default: float | None = None
    # Output extents derived from the reads (``Ho``): symbol -> formula in the other dimensions.
    extents: dict = field(default_factory=dict)
    # Arguments that may be None, meaning zeros of their shape (a second-order kernel's upstreams dY of a module
    # with several outputs, as its backward takes them).
    zero_arguments: tuple = ()
    # A forward: statement name -> the name of its window arg-max, returned beside it. A backward: the
    # canonical form of a window maximum (``canonical``) -> the saved arg-max it may route gradients through.
    arg_maxima: dict = field(default_factory=dict)

    @property
    def differentiates(self) -> bool:
        """A backward (or second-order) kernel: its upstreams first, ``into``, gradients returned."""
        return self.name.endswith(("_backward", "_hvp"))

    @property
    def omissible(self) -> bool:
        """Several upstreams, each of which the caller may omit (None: zero): none of them can give a size."""
        return len(self.upstreams) > 1

    def given(self) -> list:
        """The arrays a caller passes, in the order sizes are read from them: the upstreams first, unless they
        may be omitted (then every size they carry is also carried by an argument, and read from it)."""
        zero = [a for a in self.arguments if a.name in self.zero_arguments]
        rest = [a for a in self.arguments if a.name not in self.zero_arguments]
        return (rest + self.upstreams if self.omissible else self.upstreams + rest) + zero

    def dims(self) -> list:
        """Each dimension symbol with the first argument and axis that carries it."""
        seen = {}
        for a in self.given():
            for axis, d in enumerate(a.dims):
                if isinstance(d, sp.Symbol) and d not in seen:
                    seen[d] = (a.name, axis)
        return list(seen.items())


# -- index helpers -------------------------------------------------------------

def base_of(e):
    return e.base if isinstance(e, sp.Indexed) else e


def element(base, indices):
    """``base[indices]``, or the bare base for a scalar."""
    return base[tuple(indices)] if indices else base


def free_indices(expr) -> set:
    """Indices of ``expr`` that no Sum or MaxOver binds."""
    if isinstance(expr, sp.Idx):
        return {expr}
    if isinstance(expr, sp.Sum):
        return free_indices(expr.function) - {lim[0] for lim in expr.limits}
    if isinstance(expr, MaxOver):
        return free_indices(expr.body) - set(expr.over)
    if isinstance(expr, AtMax):
        return (free_indices(expr.value) | free_indices(expr.body)) - set(expr.over)
    if isinstance(expr, sp.Indexed):
        # An index expression (σh + i − p) carries the indices inside it.
        return {i for e in expr.indices for i in e.atoms(sp.Idx)}
    out = set()
    for a in expr.args:
        out |= free_indices(a)
    return out


def indexed_bases(expr) -> set:
    """Names of every tensor in ``expr``, indexed or scalar (a scalar tensor is a bare IndexedBase)."""
    indexed = expr.atoms(sp.Indexed)
    return {str(e.base.label) for e in indexed} | {
        str(b.label) for b in expr.atoms(sp.IndexedBase) if not any(e.base == b for e in indexed)}


@functools.lru_cache(maxsize=1 << 16)   # common subexpression elimination asks again for every node, every round
def canonical(e):
    """``e`` with its free indices renamed by order of first appearance, and that order: two expressions
    that agree up to such a renaming (over the same ranges) have the same canonical form."""
    free = free_indices(e)
    order = []
    for node in sp.preorder_traversal(e):
        if isinstance(node, sp.Idx) and node in free and node not in order:
            order.append(node)
    placeholders = {i: sp.Idx(f"_cse{n}", extent(i)) for n, i in enumerate(order)}
    return e.xreplace(placeholders), tuple(order)


def window_key(body, over):
    """The canonical form of ``max_over body``, its window indices renamed by position as well: the same window
    maximum in a forward and in its backward (which names its indices afresh) has the same key."""
    window = {k: sp.Idx(f"_win{n}", extent(k)) for n, k in enumerate(over)}
    return canonical(MaxOver(body.xreplace(window), *window.values()))[0]


def natural_order(e, indices) -> tuple:
    """``indices`` in the order the largest tensor in ``e`` stores them (then the others as given): an array
    computed from X_schw laid out as (s, c, h, w), not as a transposing copy of X."""
    tensors = sorted(e.atoms(sp.Indexed), key=lambda t: (-len(t.indices), str(t)))
    lead = [i for i in (tensors[0].indices if tensors else ()) if i in indices]
    return tuple(dict.fromkeys(lead + list(indices)))


def extent(i):
    """The size of the range an index runs over."""
    return i.upper + 1


# -- index expressions -----------------------------------------------------------

@dataclass(frozen=True)
class Affine:
    """An index expression ``(Σ_m c_m m + d) / q``: integer coefficients (numbers or integer
    hyper-parameters such as a stride) over indices, divided by a positive ``q`` (1, a stride, or a multiple of one)."""

    coeffs: tuple     # ((index, coefficient), ...), sorted by index name
    const: sp.Expr
    denom: sp.Expr

    def coeff(self, m):
        return dict(self.coeffs).get(m, sp.S.Zero)

    @property
    def indices(self) -> tuple:
        return tuple(m for m, _ in self.coeffs)


def affine(e) -> Affine | None:
    """``e`` as an ``Affine`` index expression, or None when it is not one (a product of indices, …)."""
    e = sp.sympify(e)
    num, den = sp.fraction(sp.together(e))
    if den.has(sp.Idx) or not den.is_positive:
        return None
    gens = sorted(num.atoms(sp.Idx), key=str)
    if not gens:
        return Affine((), sp.expand(num), den) if num.is_integer else None
    try:
        poly = sp.Poly(sp.expand(num), *gens)
    except sp.PolynomialError:
        return None
    if poly.total_degree() > 1:
        return None
    coeffs = tuple((m, poly.coeff_monomial(m)) for m in gens)
    const = poly.coeff_monomial(1)
    # together() may leave a number's denominator outside ((q − 1)/2 as ½·(q − 1)): bring it to the denominator.
    q = sp.ilcm(1, 1, *[c.q for c in (*dict(coeffs).values(), const) if c.is_Rational])
    if q != 1:
        coeffs, const, den = tuple((m, c * q) for m, c in coeffs), const * q, den * q
    if not all(c.is_integer for _, c in coeffs) or not const.is_integer:
        return None
    return Affine(coeffs, const, den)


def part_span(size, axis):
    """``axis − size`` when an index over ``size`` can read part of an axis of ``axis`` (or past its end): an
    integer whose sign holds for every positive dimension (``D − 1`` on ``D``, ``P`` on ``2P``); else None."""
    span = sp.expand(sp.sympify(axis) - size)
    return span if span.is_integer and (span.is_nonnegative or span.is_nonpositive) else None


def is_plain(i) -> bool:
    """An index read as it is (``X[s, j]``), not an index expression (``X[s, j + 1]``)."""
    return isinstance(i, sp.Idx) or i.is_Integer


def shifted(indexed) -> bool:
    """True for a read at an index expression: zero outside its tensor's range and between grid points; and for
    a plain index over a range other than its axis's (``X[s, j]``, ``j`` over ``D − 1`` on an axis of ``D``),
    which reads the part of the axis it covers, zero beyond the axis's end."""
    shape = indexed.base.shape
    # A gather (X[y_s, j]) reads part of an axis by position itself: it is not a view.
    part = shape is not None and not any(gathered(i) for i in indexed.indices)
    return any((not is_plain(i) and not gathered(i))
               or (part and isinstance(i, sp.Idx) and sp.expand(extent(i) - shape[a]) != 0)
               for a, i in enumerate(indexed.indices))


def gathered(i) -> bool:
    """An index read from an index array (``y[s]`` in ``X[s, y[s]]``): a gather, its values checked in range."""
    return isinstance(i, sp.Indexed) and bool(i.is_integer)


def gathers(indexed) -> bool:
    """True for a read with an index taken from an index array (``X[s, y[s]]``, ``E[t[s], j]``)."""
    return any(gathered(i) for i in indexed.indices)
