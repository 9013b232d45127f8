"""Recognisers: the one place where a derived formula's structure is matched to a known array operation.

- ``contraction``: Σ_k of two tensors that is a matrix product (GEMM) or a matrix–vector product (GEMV);
- ``correlation``: Σ over a window of two reads that is a batched correlation (a convolution's forward,
  and with a flipped window and a fractional read its input gradient, ``transposed``);
- ``correlation_weight``: Σ over the batch and the output positions that is a convolution's weight gradient;
- ``scatter``: a gradient routed to the arg-max of a window (max pooling's backward);
- ``gather_route``: a sum holding δ(k, y[…]), a gradient routed to the positions an index array holds (the
  adjoint of a gather: an embedding's weight gradient);
- ``deferrable``: gradients that are one matrix product nothing later reads (added into the caller's array);
- elementwise shapes a backend may compute in one pass: ``threshold_select`` (v where x > c, else 0: ReLU's
  gradient), ``clamp`` (max(lo, min(hi, u))), ``multiply_add`` (c + v·a·b); and ``affine_route`` (positions
  that are integer combinations of indices, the spec of a strided view).

The lowering (``lower.py``) turns what these find into array operations; the matrix notation of the
derivations (``latex.py``) reads products through ``contraction`` too. Everything here depends on SymPy
and the IR alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .ir import AtMax, OnGrid, affine, extent, free_indices, gathered, indexed_bases


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


def deferrable(statements, results) -> set:
    """Gradients that are one matrix product no later statement reads: a caller's ``into`` takes them unformed."""
    found = set()
    for n, st in enumerate(statements):
        if st.name in results and contraction(st.rhs, st.indices) is not None \
                and not any(st.name in indexed_bases(later.rhs) for later in statements[n + 1:]):
            found.add(st.name)
    return found


# -- elementwise shapes ---------------------------------------------------------------

def _arrays(e) -> bool:
    return isinstance(e, sp.Basic) and e.has(sp.Indexed, sp.IndexedBase, sp.Idx)


def threshold_select(e):
    """``Piecewise((v, x > c), (0, True))`` (or ``c < x``) with x an array and c a number: (v, x, c), else None."""
    if not isinstance(e, sp.Piecewise) or len(e.args) != 2 or e.args[1].expr != 0 or e.args[1].cond != sp.true:
        return None
    (v, cond), _ = e.args
    if not v.has(sp.Indexed) or not isinstance(cond, (sp.StrictGreaterThan, sp.StrictLessThan)):
        return None
    x, c = (cond.lhs, cond.rhs) if isinstance(cond, sp.StrictGreaterThan) else (cond.rhs, cond.lhs)
    return (v, x, c) if _arrays(x) and not _arrays(c) else None


def clamp(e):
    """``max(lo, u)``, ``min(hi, u)``, ``max(lo, min(hi, u))`` or ``min(hi, max(lo, u))`` with numbers lo, hi and one
    array u: (u, lo or None, hi or None), else None."""
    if not isinstance(e, (sp.Max, sp.Min)):
        return None
    consts = [a for a in e.args if not _arrays(a)]
    arrays = [a for a in e.args if a not in consts]
    if len(arrays) != 1 or not consts:
        return None
    outer = isinstance(e, sp.Max)
    bound = sp.Max(*consts) if outer else sp.Min(*consts)
    inner, other = arrays[0], (sp.Min if outer else sp.Max)
    if isinstance(inner, other) and len(inner.args) == 2:
        ic = [a for a in inner.args if not _arrays(a)]
        if len(ic) == 1:
            u = next(a for a in inner.args if a is not ic[0])
            return (u, bound, ic[0]) if outer else (u, ic[0], bound)
    return (inner, bound, None) if outer else (inner, None, bound)


def multiply_add(e):
    """``c + v·a·b``: an array c plus a number v times two reads: (c, a, b, v), else None."""
    if not isinstance(e, sp.Add) or len(e.args) != 2:
        return None
    for prod, c in (e.args, e.args[::-1]):
        if not isinstance(prod, sp.Mul) or not _arrays(c) or isinstance(c, sp.Mul) and c.has(OnGrid):
            continue
        coeff, rest = prod.as_coeff_Mul()
        factors = sp.Mul.make_args(rest)
        if len(factors) == 2 and all(isinstance(f, (sp.Indexed, sp.IndexedBase)) for f in factors):
            return c, *factors, coeff
    return None


def affine_route(indices, routed, axes):
    """The position on each target axis (``routed[t]``, or t itself) as a strided view's spec over ``axes``:
    ((coefficients, constant, denominator), …), or None where one is not an integer combination of them."""
    grid = []
    for t in indices:
        a = affine(routed.get(t, t))
        if a is None or any(m not in axes for m in a.indices):
            return None
        grid.append((tuple(a.coeff(m) for m in axes), a.const, a.denom))
    return tuple(grid)


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
    window: tuple             # the summed window indices k…

    @property
    def transposed(self) -> bool:
        """A correlation with the whole window read backwards and unit strides is a transposed convolution:
        Σ_k x[(o + δk + c)/q] w[K−1−k] = Σ_k' x[(o + p − δk')/q] w[k'] with p = δ(K−1) + c."""
        return all(self.w_flip) and all(s == 1 for s in self.stride)

    def transposed_padding(self) -> tuple:
        return tuple(sp.expand(d * (extent(k) - 1) + c) for d, k, c in zip(self.dilation, self.window, self.offset))


def _two_reads(expr):
    """The two reads a Sum multiplies, or None."""
    if not isinstance(expr, sp.Sum):
        return None
    factors = sp.Mul.make_args(expr.function)
    return factors if len(factors) == 2 and all(isinstance(f, sp.Indexed) for f in factors) else None


def correlation(expr, target) -> Correlation | None:
    """``expr`` (a Sum of two reads) as a ``Correlation`` producing ``target``'s indices, else None."""
    factors = _two_reads(expr)
    if factors is None:
        return None
    bound = {lim[0] for lim in expr.limits}
    free = set(target)
    for x, w in (factors, factors[::-1]):
        found = _correlation(x, w, bound, free)
        if found is not None:
            return found
    return None


def _spatial(x, outer, inner):
    """The axes of read x at ``σ·o + δ·k + c`` (o in ``outer``, k in ``inner``, σ, δ > 0) and its plain axes,
    or None."""
    spatial, plain = [], []
    for axis, ix in enumerate(x.indices):
        if isinstance(ix, sp.Idx):
            plain.append((axis, ix))
            continue
        a = affine(ix)
        if a is None or len(a.coeffs) != 2:
            return None
        (m1, c1), (m2, c2) = a.coeffs
        o, k = (m1, m2) if m1 in outer else (m2, m1)
        sigma, delta = a.coeff(o), a.coeff(k)
        if o not in outer or k not in inner or not (sigma.is_positive and delta.is_positive):
            return None
        spatial.append((axis, o, k, sigma, delta, a.const, a.denom))
    return (spatial, plain) if spatial else None


def _correlation(x, w, bound, free):
    found = _spatial(x, free, bound)
    if found is None:
        return None
    spatial, plain = found
    if len(plain) != 2:
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
        tuple(s[6] for s in spatial), n[0][1], co[0], tuple(s[1] for s in spatial), tuple(windows))


@dataclass(frozen=True)
class CorrelationWeight:
    """Σ over the batch and the output positions that is a convolution's weight gradient::

        dw[co, ci, k…] = Σ_{n, o…} x[n, ci, σ·o + δ·k + c …] · dy[n, co, o…]

    ``x_axes`` (n, ci, spatial…) and ``dy_axes`` (n, co, o…) are the operands' axes in that order;
    ``layout`` the result's indices (co, ci, k…).
    """

    x: sp.Indexed
    dy: sp.Indexed
    x_axes: tuple
    dy_axes: tuple
    stride: tuple
    dilation: tuple
    offset: tuple
    window: tuple
    layout: tuple


def correlation_weight(expr, target) -> CorrelationWeight | None:
    """``expr`` (a Sum of two reads) as a ``CorrelationWeight`` producing ``target``'s indices, else None."""
    factors = _two_reads(expr)
    if factors is None:
        return None
    bound, free = {lim[0] for lim in expr.limits}, set(target)
    for x, dy in (factors, factors[::-1]):
        found = _spatial(x, bound, free)   # the output positions o are summed, the window k is free
        if found is None or not all(isinstance(i, sp.Idx) for i in dy.indices):
            continue
        spatial, plain = found
        if any(s[6] != 1 for s in spatial) or len(plain) != 2 or len(dy.indices) != 2 + len(spatial):
            continue
        n = [(axis, i) for axis, i in plain if i in bound]
        ci = [(axis, i) for axis, i in plain if i in free]
        outs = [o for _, o, *_ in spatial]
        if len(n) != 1 or len(ci) != 1 or n[0][1] not in dy.indices or any(o not in dy.indices for o in outs):
            continue
        co = [i for i in dy.indices if i in free]
        if len(co) != 1 or set(dy.indices) != {n[0][1], co[0], *outs} or len(set(dy.indices)) != len(dy.indices):
            continue
        windows = tuple(k for _, _, k, *_ in spatial)
        layout = (co[0], ci[0][1], *windows)
        if set(layout) != free or len(set(layout)) != len(layout) or bound != {n[0][1], *outs}:
            continue
        pos = {i: a for a, i in enumerate(dy.indices)}
        return CorrelationWeight(
            x, dy, (n[0][0], ci[0][0], *[s[0] for s in spatial]),
            (pos[n[0][1]], pos[co[0]], *[pos[o] for o in outs]),
            tuple(s[3] for s in spatial), tuple(s[4] for s in spatial), tuple(s[5] for s in spatial),
            windows, layout)
    return None


# -- pooling ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Pooling:
    """A read over a window that is a batched pool (what ``max_pool1d/2d/3d`` reads)::

        x[n, c, σ·o + δ·k + c₀ …]    (x zero — or −∞ inside a max — off its range)

    ``x_axes`` are x's axes in the order (n, c, spatial…); ``lead`` the indices (n, c, o…); ``window`` k….
    """

    x: sp.Indexed
    x_axes: tuple
    stride: tuple
    dilation: tuple
    offset: tuple
    lead: tuple
    window: tuple


def pooling(read, over) -> Pooling | None:
    """``read`` (a read at index expressions) over the window indices ``over`` as a ``Pooling``, else None."""
    if not isinstance(read, sp.Indexed):
        return None
    window = set(over)
    outer = {i for e in read.indices for i in e.atoms(sp.Idx)} - window
    found = _spatial(read, outer, window)
    if found is None:
        return None
    spatial, plain = found
    if len(plain) != 2 or any(s[6] != 1 for s in spatial) or any(i in window for _, i in plain):
        return None
    ks = [s[2] for s in spatial]
    indices = [i for _, i in plain] + [s[1] for s in spatial]
    if set(ks) != window or len(ks) != len(window) or len(set(indices)) != len(indices):
        return None
    return Pooling(read, (plain[0][0], plain[1][0], *[s[0] for s in spatial]), tuple(s[3] for s in spatial),
                   tuple(s[4] for s in spatial), tuple(s[5] for s in spatial), tuple(indices), tuple(ks))


# -- scatter to the arg-max --------------------------------------------------------------

@dataclass(frozen=True)
class Scatter:
    """``dX[t…] = Σ_B Σ_routes weight · AtMax(Π_k δ(e_k, t_k), F, K)``: each route's weight goes to the
    positions e_k at the arg-max of F over K (max pooling's backward).

    ``layout`` the lead indices (dX's indices no delta routes, then the summed ones), ``over`` the window,
    ``body`` F, ``routes`` the (routed: {t: e_t}, summed weight) pairs.
    """

    layout: tuple
    over: tuple
    body: sp.Expr
    routes: tuple


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


def scatter(st) -> Scatter | None:
    """The statement as a ``Scatter``, or None when it is not of that form.

    Several terms over one arg-max are added: the weights of a route (the same deltas) summed.
    """
    parts = []
    for t in sp.Add.make_args(sp.expand_mul(st.rhs, deep=False)):
        found = _scatter_terms(t)
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
    return Scatter(layout, over, first.body, tuple(routes.values()))


# -- gathers -----------------------------------------------------------------------

@dataclass(frozen=True)
class GatherRoute:
    """``Σ_B weight · Π δ(k, g)``: ``weight`` (each k replaced by its g) added at position ``g`` (a read of an index
    array) of the axis that the free index ``k`` runs over, for each pair in ``positions``: a scatter-add."""

    positions: tuple   # ((k, g), ...)
    weight: sp.Expr
    # Indices of nested sums folded into this one (summed too).
    bound: tuple = ()


def gather_route(body, bound) -> GatherRoute | None:
    """The body of a sum over ``bound`` as a product holding δ(k, y[…]) with k free (not summed here), else None.

    ``Σ_s dY_sj δ(q, t_s)`` (an embedding's gradient) sums over what the index array indexes; sifting leaves
    it, as no equation solves for s."""
    factors = sp.Mul.make_args(body)
    for f in factors:
        rest = sp.Mul(*[x for x in factors if x is not f])
        if isinstance(f, sp.Sum) and not set(f.variables) & free_indices(rest):
            # Σ_b A_b Σ_l δ(p, t_bl) (a collected form) is one scatter over b and l.
            inner = gather_route(f.function, tuple(bound) + tuple(f.variables))
            if inner is not None:
                return GatherRoute(inner.positions, rest.xreplace(dict(inner.positions)) * inner.weight,
                                   tuple(f.variables) + inner.bound)
        if not isinstance(f, sp.KroneckerDelta):
            continue
        a, b = f.args
        g, k = (a, b) if gathered(a) else (b, a)
        if gathered(g) and isinstance(k, sp.Idx) and k not in bound and k not in g.free_symbols:
            weight = rest.xreplace({k: g})
            # A delta of another axis (X[y_s, z_s]: δ(p, y_s) δ(q, z_s)) routes on that axis in the same scatter.
            more = gather_route(weight, tuple(bound) + (k,))
            if more is not None and not more.bound:
                return GatherRoute(((k, g),) + more.positions, more.weight)
            return GatherRoute(((k, g),), weight)
    return None
