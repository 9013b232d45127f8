"""Kernels as data: the bottom layer of the engine.

A ``Kernel`` lists its array arguments (with symbolic shapes), scalar
hyper-parameters, statements ``lhs[indices] = rhs`` whose right-hand sides are
SymPy expressions (contractions are ``Sum`` of products, elementwise work is
everything else), and the names it returns.

Everything here depends on SymPy alone, and every other layer may use it: the
nodes the engine adds to SymPy (``MaxOver`` and ``MaxWithZeros``, ``AtMax``,
``OnGrid``), index helpers and index expressions (``affine``), and the
recognisers of matrix products (``contraction``) and of convolutions
(``correlation``) that the code printers and the matrix-notation reader read.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp


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

    def _latex(self, printer):
        ks = ",".join(printer._print(k) for k in self.over)
        return r"\max_{%s} %s" % (ks, printer._print(self.body))

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

    @property
    def body(self):
        return self.args[1]

    @property
    def over(self) -> tuple:
        return tuple(self.args[2:])

    def _latex(self, printer):
        ks = ",".join(printer._print(k) for k in self.over)
        return r"\left. %s \right|_{%s = \operatorname{argmax} %s}" % (
            printer._print(self.value), ks, printer._print(self.body))

    def _index_text(self, printer):
        ks = ",".join(map(str, self.over))
        return f"({printer._print(self.value)} at {ks} = argmax {printer._print(self.body)})"


class OnGrid(sp.Function):
    """The Iverson bracket ``[e ∈ {0, …, n−1}]``: 1 where the index expression ``e`` is an integer in range, else 0.

    Sifting a shifted delta (Σ_h δ(σh + i − p, u) f(h)) leaves one; a read
    ``T[…, e, …]`` on an axis of extent n absorbs it, since reads off the grid are zero.
    """

    nargs = 2

    def _latex(self, printer):
        e, n = self.args
        return r"\left[ %s \in \{0..%s\} \right]" % (printer._print(sp.together(e)), printer._print(n - 1))

    def _index_text(self, printer):
        e, n = self.args
        return f"[{printer._print(sp.together(e))} ∈ 0..{printer._print(n - 1)}]"


@dataclass(frozen=True)
class Array:
    name: str
    dims: tuple


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
    # A backward's first argument: the upstream gradient (``dY``; ``dL`` for a loss, a scalar defaulting to 1).
    upstream: Array | None = None
    upstream_default: float | None = None
    # Output extents derived from the reads (``Ho``): symbol -> formula in the other dimensions.
    extents: dict = field(default_factory=dict)

    def dims(self) -> list:
        """Each dimension symbol with the first argument and axis that carries it."""
        seen = {}
        for a in ([self.upstream] if self.upstream else []) + self.arguments:
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


def extent(i):
    """The size of the range an index runs over."""
    return i.upper + 1


# -- matrix products -----------------------------------------------------------

@dataclass(frozen=True)
class Contraction:
    """Σ_k of two tensors that is a matrix product: ``left`` (in layout ``left_layout``) times ``right``.

    ``kind`` is "gemm" (matrix @ matrix) or "gemv" (matrix @ vector).
    """

    kind: str
    left: sp.Indexed
    right: sp.Indexed
    left_layout: tuple
    right_layout: tuple


def contraction(expr, target) -> Contraction | None:
    """``expr`` (a Sum) as a GEMM or GEMV producing the indices ``target`` in that order, else None.

    Σ_k A_pk B_kq with target (p, q) is ``A B``; operands written in another
    order (A_kp) read as transposes. Σ_k A_pk v_k with target (p,) is ``A v``.
    """
    if not isinstance(expr, sp.Sum) or len(expr.limits) != 1:
        return None
    k = expr.limits[0][0]
    factors = sp.Mul.make_args(expr.function)
    if len(factors) != 2 or not all(isinstance(f, sp.Indexed) for f in factors):
        return None
    if any(len(set(f.indices)) != len(f.indices) for f in factors):
        return None
    a, b = factors
    target = tuple(target)
    if len(target) == 2 and all(len(t.indices) == 2 for t in factors) and k in a.indices and k in b.indices:
        left = a if target[0] in a.indices else b
        right = b if left is a else a
        if set(left.indices) == {target[0], k} and set(right.indices) == {k, target[1]} and target[0] != target[1]:
            return Contraction("gemm", left, right, (target[0], k), (k, target[1]))
    if len(target) == 1:
        mats = [t for t in factors if len(t.indices) == 2]
        vecs = [t for t in factors if tuple(t.indices) == (k,)]
        if len(mats) == 1 and len(vecs) == 1 and set(mats[0].indices) == {target[0], k}:
            return Contraction("gemv", mats[0], vecs[0], (target[0], k), (k,))
    return None


# -- index expressions -----------------------------------------------------------

@dataclass(frozen=True)
class Affine:
    """An index expression ``(Σ_m c_m m + d) / q``: integer coefficients (numbers or integer
    hyper-parameters such as a stride) over indices, divided by a positive ``q`` (1, or a stride)."""

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
    if not all(c.is_integer for _, c in coeffs) or not const.is_integer:
        return None
    return Affine(coeffs, const, den)


def is_plain(i) -> bool:
    """An index read as it is (``X[s, j]``), not an index expression (``X[s, j + 1]``)."""
    return isinstance(i, sp.Idx) or i.is_Integer


def shifted(indexed) -> bool:
    """True for a read at an index expression: zero outside its tensor's range and between grid points."""
    return any(not is_plain(i) for i in indexed.indices)


# -- correlations ------------------------------------------------------------------

@dataclass(frozen=True)
class Correlation:
    """Σ over a window of two tensors that is a batched correlation (what ``conv1d/2d/3d`` compute)::

        out[n, co, o…] = Σ_{ci, k…} x[n, ci, (σ·o + δ·k + c)/q …] · w[co, ci, k…]      (x zero off its grid)

    ``x``/``w`` are the operands; ``x_axes``/``w_axes`` the operand axes in the order
    (n, ci, spatial…) and (co, ci, window…); ``w_flip`` the window axes ``w`` reads backwards.
    """

    x: sp.Indexed
    w: sp.Indexed
    x_axes: tuple
    w_axes: tuple
    w_flip: tuple
    stride: tuple
    dilation: tuple
    offset: tuple
    denom: tuple
    batch: sp.Idx
    channel_out: sp.Idx
    spatial: tuple            # the output's window positions o…


def correlation(expr, target) -> Correlation | None:
    """``expr`` (a Sum of two reads) as a ``Correlation`` producing ``target``'s indices, else None."""
    if not isinstance(expr, sp.Sum):
        return None
    factors = sp.Mul.make_args(expr.function)
    if len(factors) != 2 or not all(isinstance(f, sp.Indexed) for f in factors):
        return None
    bound = {lim[0] for lim in expr.limits}
    free = set(target)
    for x, w in (factors, factors[::-1]):
        found = _correlation(x, w, bound, free)
        if found is not None:
            return found
    return None


def _correlation(x, w, bound, free):
    spatial, plain = [], []
    for axis, ix in enumerate(x.indices):
        if isinstance(ix, sp.Idx):
            plain.append((axis, ix))
            continue
        a = affine(ix)
        if a is None or len(a.coeffs) != 2:
            return None
        (m1, c1), (m2, c2) = a.coeffs
        o, k = (m1, m2) if m1 in free else (m2, m1)
        sigma, delta = a.coeff(o), a.coeff(k)
        if o not in free or k not in bound or not (sigma.is_positive and delta.is_positive):
            return None
        spatial.append((axis, o, k, sigma, delta, a.const, a.denom))
    if not spatial or len(plain) != 2:
        return None
    n = [(axis, i) for axis, i in plain if i in free]
    ci = [(axis, i) for axis, i in plain if i in bound]
    if len(n) != 1 or len(ci) != 1:
        return None
    windows = [k for _, _, k, *_ in spatial]
    w_pos, flips = {}, []
    for axis, ix in enumerate(w.indices):
        if isinstance(ix, sp.Idx):
            w_pos[ix] = axis
            continue
        a = affine(ix)  # a window read backwards: K − 1 − k
        if a is None or len(a.coeffs) != 1 or a.denom != 1 or a.coeffs[0][1] != -1 \
                or sp.simplify(a.const - a.coeffs[0][0].upper) != 0:
            return None
        w_pos[a.coeffs[0][0]] = axis
        flips.append(a.coeffs[0][0])
    co = [i for i in w_pos if i in free]
    if len(co) != 1 or len(w_pos) != len(w.indices) or set(w_pos) != {co[0], ci[0][1], *windows}:
        return None
    if len({n[0][1], co[0], ci[0][1], *windows, *[o for _, o, *_ in spatial]}) != 2 + 2 * len(spatial) + 1:
        return None
    return Correlation(
        x, w,
        (n[0][0], ci[0][0], *[axis for axis, *_ in spatial]),
        (w_pos[co[0]], w_pos[ci[0][1]], *[w_pos[k] for k in windows]),
        tuple(k in flips for k in windows),
        tuple(s[3] for s in spatial), tuple(s[4] for s in spatial), tuple(s[5] for s in spatial),
        tuple(s[6] for s in spatial), n[0][1], co[0], tuple(s[1] for s in spatial))
