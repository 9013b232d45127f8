"""Exact rewrites that keep emitted kernels finite and accurate over the whole floating range.

Each is an identity, so the emitted value is the derived one:

- Every sum of exponentials ``Σ_k f exp(u_k)`` (``f`` a weight free of them: a mask, an upstream
  gradient), wherever it stands (inline, under a log, in a ratio, nested in another sum), is
  ``exp(m) Σ_k f exp(u_k − m)`` with ``m = max_k u_k``; under a positive hyper-parameter scale
  (``u = w/τ``) the maximum is of ``w`` and the sum reads ``exp((w − m)/τ)``, so ``w/τ`` is never formed.
  One maximum per exponent (its canonical form), shared by the numerator's and denominator's sums and
  by the sums a gradient brings back, and by the kernels after the forward (which returns it). ``exp(m)``
  is a placeholder until it cancels: taken out of sums whose index it does not carry, out of sums of
  terms that all hold it, out of logs (``log(exp(m) Z') = m + log Z'``), then combined with the
  exponentials beside it (``exp(x)/(exp(m) Z') = exp(x − m)/Z'``): softmax, log-softmax, attention.
  A let that is one such sum is stored shifted, ``Z' = c Σ_k f exp(u_k − m)``; its uses read
  ``exp(m) Z'``, and a kernel that receives ``Z`` receives ``m`` beside it. The output and what the
  forward returns hold their true values.
  Where every sum of an exponent is weighted by factors that may be 0 (a mask ``M``; the group's common
  part), ``m`` is the maximum over the positions they keep (masked ones count as the row's smallest
  exponent, at most 0): over all positions, ``M = 0`` at the row's largest logit leaves every kept term
  underflowing (0/0). A kept term is then ``≤ 1``; a masked one, ``M exp(u − m)`` with ``u − m`` possibly
  overflowing, is written ``M exp(min(u − m, 0))`` (an identity, as ``u ≤ m`` wherever ``M ≠ 0``), in the
  sum and wherever the same weight multiplies the same exponential (the masked softmax's numerator). A
  maximum already made over part of the weight is shared (attention's numerator, weighted by V, reads the
  normaliser's; a gradient's sums weighted by ``M dY`` read the forward's masked one).
- A reduction ``Q = c Σ_k u_k²`` gets a scaled twin: ``m = max_k |u_k|`` (1 where
  all are 0) and ``Q' = c Σ_k (u_k/m)²``; later uses of ``Q`` read ``m² Q'`` (and of a
  plain read ``u = X[s, j]``, ``m ratio``), and every power of ``M = max(m, 1)`` is taken out
  of the sums, products and powers that hold it, to where the powers cancel
  (``√(ε + m² Q') = M √(ε/M² + min(m, 1)² Q')``; a second order's ``X/σ³ · σ`` is ``ratio/σ'``).
  A norm or a variance of inputs whose squares overflow or underflow is then computed like
  ``hypot`` (2-norm of 1e30 in float32, of 1e-30). ``Q`` itself, for a caller that asks for it,
  is ``m² Q'``.
- ``log`` of a quotient intermediate is expanded (``log(exp(a)/Z) = a − log Z``),
  so a probability that underflows to 0 never reaches ``log`` (log-softmax).
- Exponentials of unbounded arguments (``exp``, ``cosh``, ``sinh``, ``tanh``,
  softplus's ``log(1 + e^x)``) are written in ``t = e^{−|u|} ≤ 1`` on each side of
  0 (``exponentials.normalise``): ``e^x/cosh²(x/2)`` cannot be ``inf/inf``.
- ``1 ± erf(z)`` is ``erfc(∓z)`` (no cancellation in the tail).
- ``exp(x) − 1`` and ``log(1 + x)`` become ``expm1``/``log1p`` (no cancellation near 0).
- In each branch of a ``Piecewise`` over one subject ``u``, ``u`` inside an
  exponential is clamped to the values for which that branch is taken: the
  branch not taken (``where`` computes both) can then not overflow.
- ``Piecewise((a(u), u > c), (b(u), True))`` with ``a(c) = b(c) = 0`` is
  ``a(max(u, c)) + b(min(u, c))``: each branch is exactly 0 where the other
  holds, so no select is needed (ReLU, LeakyReLU and ELU forwards).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import sympy as sp
import sympy.codegen.cfunctions as cf

from . import budget
from .exponentials import HYPERBOLIC, normalise
from .ir import AtMax, MaxWithZeros, Statement, powered, Sum, base_of, canonical, element, extent, free_indices, natural_order
from .normal_forms import branch_domains


@dataclass
class Context:
    """What the statements of a kernel (and the kernels after it) know of earlier ones."""

    # A shifted reduction Z → (its maximum m, the scale c, the positions of m's indices among Z's): Z holds
    # Σ exp(c (w − m)), its true value is exp(c m) Z.
    shifted: dict = field(default_factory=dict)
    # A sum of squares Q → its Twin (Q', m, the ratio u/m): Q' holds Σ (u/m)², the true value is m² Q'.
    scaled: dict = field(default_factory=dict)
    # Statement definitions by base as the forward states them, for log(P) with P a quotient of exponentials.
    definitions: dict = field(default_factory=dict)
    # Names taken by statements the pass added.
    names: set = field(default_factory=set)
    # Statements that must hold their true value (the output, what the forward returns): never stored shifted.
    true_values: set = field(default_factory=set)
    # Maxima of exponents by canonical form → (statement computing it, positions of its indices among the
    # free indices in canonical order): one max per exponent, so sums shifted alike cancel exactly.
    maxima: dict = field(default_factory=dict)
    # Placeholder P (standing for exp(c m) while shifts cancel) → (the maximum m, the scale c).
    placeholders: dict = field(default_factory=dict)
    # A maximum over the positions where a weight is nonzero, by its base → (the exponent w, the weight g, the
    # summed indices, its element as made): a product g exp(c (w − m)) at a position is clamped (see _clamp_weighted).
    masked: dict = field(default_factory=dict)
    # The statements a maximum reads besides the exponent (a masked maximum's row minimum), by its base.
    helpers: dict = field(default_factory=dict)


def _single_sum(rhs):
    """``(c, body, limits)`` if ``rhs = c Σ_{k…} body`` with ``c`` free of arrays, else None."""
    const = sp.Mul(*[f for f in sp.Mul.make_args(rhs) if not isinstance(f, sp.Sum)])
    sums = [f for f in sp.Mul.make_args(rhs) if isinstance(f, sp.Sum)]
    if len(sums) != 1 or const.has(sp.Indexed):
        return None
    return const, sums[0].function, tuple(sums[0].limits)


def _exponent(body, over):
    """``(f, u)`` if ``body = f exp(u)`` with ``u`` varying over the summed indices ``over`` and ``f`` free of
    exponentials that do (a weight: a mask, an upstream gradient), else None."""
    varying = [f for f in sp.Mul.make_args(body) if isinstance(f, sp.exp) and free_indices(f.args[0]) & over]
    if not varying:
        return None
    u = sp.Add(*[f.args[0] for f in varying])
    rest = sp.Mul(*[f for f in sp.Mul.make_args(body) if f not in varying])
    if any(free_indices(x) & over for x in rest.atoms(sp.exp, *HYPERBOLIC)):
        return None
    if not u.has(sp.Indexed):
        return None
    return rest, u


def _exp_sum(rhs):
    """``(c, f, u, limits)`` if ``rhs = c Σ_{k…} f exp(u)``, else None."""
    found = _single_sum(rhs)
    if found is None:
        return None
    c, body, limits = found
    fu = _exponent(body, {lim[0] for lim in limits})
    return None if fu is None else (c, *fu, limits)


def _zeroable(f, over) -> list:
    """The factors of a weight ``f`` that vary over the summed indices ``over`` and may be 0 (a mask, an upstream
    gradient; not a positive input, not a denominator, which is finite only where it is nonzero)."""
    def may_vanish(x):
        if not free_indices(x) & over or x.is_nonzero:
            return False
        if x.has(sp.KroneckerDelta, AtMax):
            # A factor that routes (a delta, a value at a window's arg-max) is no mask: a maximum over where it
            # is nonzero is not a kernel's to take, and the plain maximum shifts the routed sum as well.
            return False
        return not (isinstance(x, sp.Pow) and x.exp.is_negative)
    return [x for x in sp.Mul.make_args(f) if may_vanish(x)]


def _weight_groups(rhs) -> dict:
    """For each exponent (its window form) summed in ``rhs``: the zeroable weight factors (window forms) that
    every sum of it carries. One maximum per exponent: the numerator's and the normaliser's sums of attention
    (V and 1) share the unweighted one; a masked softmax's sums (M, and M dY in its gradient) the masked one."""
    groups = {}
    for s in rhs.atoms(sp.Sum):
        over = {lim[0] for lim in s.limits}
        found = _exponent(s.function, over)
        if found is None:
            continue
        f, u = found
        c, w = _scale(u)
        ks = [lim[0] for lim in s.limits if lim[0] in free_indices(w)]
        window = {k: sp.Idx(f"_win{n}", extent(k)) for n, k in enumerate(ks)}
        key = w.xreplace(window)
        factors = {x.xreplace(window) for x in _zeroable(f, set(ks))}
        groups[key] = groups[key] & factors if key in groups else factors
    return groups


def _group_weight(f, w, ks, groups, context: Context) -> sp.Expr:
    """The part of ``f`` that the maximum of ``w`` over ``ks`` is restricted by (1: every position). A maximum of
    ``w`` already made (the forward's, a let's) over a part of it is shared: a sum weighted by V beside a
    normaliser of the same exponent (attention's numerator) is read relative to that normaliser."""
    window = {k: sp.Idx(f"_win{n}", extent(k)) for n, k in enumerate(ks)}
    shared = groups.get(w.xreplace(window), set())
    factors = [x for x in _zeroable(f, set(ks)) if x.xreplace(window) in shared]
    for n in range(len(factors), -1, -1):
        for part in itertools.combinations(factors, n):
            if _max_key(w, ks, sp.Mul(*part))[0] in context.maxima:
                return sp.Mul(*part)
    return sp.Mul(*factors)


def _max_key(u, over, g):
    """The canonical form of ``max_{over} u`` over the positions where ``g ≠ 0``, and its free indices' order."""
    window = {k: sp.Idx(f"_win{n}", extent(k)) for n, k in enumerate(over)}
    body = u if g == 1 else sp.Piecewise((u, sp.Ne(g, 0)), (0, True))
    return canonical(MaxWithZeros(body.xreplace(window), *window.values()))


def _maximum(u, over, st, out: list, context: Context, g=sp.S.One):
    """The element ``m`` of ``max_{over} u`` (over the positions where the weight ``g`` is nonzero, when it is
    not 1): computed once per kernel sequence (its canonical form is the key), by a statement placed before
    ``st`` the first time."""
    body = u if g == 1 else sp.Piecewise((u, sp.Ne(g, 0)), (0, True))
    key, order = _max_key(u, over, g)
    if key in context.maxima:
        made, positions = context.maxima[key]
        if made.serves is not None and made.serves != st.serves and made in out:
            # Now read by another gradient's statement too: computed whatever the caller skips.
            for h in context.helpers.get(base_of(made.lhs), ()):
                if h in out:
                    out[out.index(h)] = Statement(h.lhs, h.rhs)
            shared = Statement(made.lhs, made.rhs)
            out[out.index(made)] = shared
            context.maxima[key] = (shared, positions)
        return element(base_of(made.lhs), [order[p] for p in positions])
    ix = natural_order(body, order)
    label = st.lhs.base.label if isinstance(st.lhs, sp.Indexed) else st.lhs.label
    m = sp.IndexedBase(_fresh(f"{label}_max", context), real=True)
    if g != 1:
        # Masked positions count as the row's smallest exponent (and at most 0): they never raise the maximum,
        # and a row with no kept position gets a finite one, exp(m) ≤ 1 (its sum is 0, not 0 · inf).
        low = sp.IndexedBase(_fresh(f"{label}_low", context), real=True)
        lowest = Statement(element(low, [i for i in ix if i in free_indices(u)]), MaxWithZeros(-u, *over), st.serves)
        out.append(lowest)
        context.helpers[m] = [lowest]
        body = sp.Piecewise((u, sp.Ne(g, 0)), (sp.Min(-lowest.lhs, 0), True))
    made = Statement(element(m, ix), MaxWithZeros(body, *over), st.serves)
    out.append(made)
    context.maxima[key] = (made, tuple(order.index(i) for i in ix))
    if g != 1:
        context.masked[m] = (u, g, tuple(over), made.lhs)
    return made.lhs


def _shifted_term(f, c, w, m, g):
    """``f exp(c (w − m))``; with a masked maximum the exponent is clamped at 0, an identity where ``g ≠ 0``
    (there ``w ≤ m``) that keeps a masked position's ``0 · exp(w − m)`` at 0 where ``w − m`` would overflow."""
    return f * sp.exp(c * (w - m)) if g == 1 else f * sp.exp(c * sp.Min(w - m, 0))


def _below_its_maximum(u, context: Context) -> bool:
    """True when ``u = c (w − m)`` with ``m`` a maximum the pass made of ``w`` over some of its indices, read at
    the others (``E_np − m_n``, ``m_n = max_p E_np``): then ``u ≤ 0`` and ``exp(u)`` cannot overflow."""
    c, v = _scale(u)
    for term in sp.Add.make_args(sp.expand(v)):
        m = -term
        if not (isinstance(m, sp.Indexed) and any(base_of(made.lhs) == m.base for made, _ in context.maxima.values())):
            continue
        w = v + m
        free = sorted(free_indices(w), key=str)
        for n in range(1, len(free) + 1):
            for over in itertools.combinations(free, n):
                window = {k: sp.Idx(f"_win{i}", extent(k)) for i, k in enumerate(over)}
                key, order = canonical(MaxWithZeros(w.xreplace(window), *window.values()))
                if key in context.maxima:
                    made, positions = context.maxima[key]
                    if element(base_of(made.lhs), [order[p] for p in positions]) == m:
                        return True
    return False


def _scale(u):
    """``(c, w)`` with ``u = c w``, ``c`` a positive hyper-parameter factor (``X/τ``: c = 1/τ), else ``(1, u)``.
    The shift is then ``exp(c (w − max w))``: ``X/τ`` may overflow where ``X − max X`` cannot."""
    c = sp.Mul(*[f for f in sp.Mul.make_args(u) if not f.has(sp.Indexed) and not f.is_Number and f.is_positive])
    return (c, u / c) if c != 1 else (sp.S.One, u)


def _placeholder(m, c, context: Context):
    """``P[i]`` standing for ``exp(c m[i])`` (positive, so SymPy combines its powers and takes it out of roots)."""
    mbase = base_of(m)
    taken = [p for p, v in context.placeholders.items() if v == (mbase, c)]
    if taken:
        p = taken[0]
    else:
        p = sp.IndexedBase(f"_shift_{mbase.label}_{len(context.placeholders)}", positive=True)
        context.placeholders[p] = (mbase, c)
    return element(p, m.indices if isinstance(m, sp.Indexed) else ())


def _exp_of_placeholder(p, context: Context):
    mbase, c = context.placeholders[base_of(p)]
    return c * element(mbase, p.indices if isinstance(p, sp.Indexed) else ())


def _is_placeholder(e, context: Context) -> bool:
    return base_of(e) in context.placeholders if isinstance(e, (sp.Indexed, sp.IndexedBase)) else False


def _shift_sums(rhs, st, out: list, context: Context):
    """Every ``Σ_k f exp(u)`` inside ``rhs`` → ``exp(m) Σ_k f exp(u − m)``, ``m = max_k u`` (``exp(m)`` held
    by a placeholder until the shifts cancel). Inner sums first; a placeholder of an inner sum that the outer
    sum's indices do not reach leaves that sum (attention's ``Σ_j exp(E_j) V_j / Σ_l exp(E_l)``). Where every
    sum of an exponent carries a weight that may be 0 (a mask M), ``m`` is the maximum over the positions it
    keeps: over all of them, a mask 0 at the row's largest logit leaves every kept term underflowing (0/0)."""
    groups = _weight_groups(rhs)

    def shift(s):
        over = {lim[0] for lim in s.limits}
        outside = [f for f in sp.Mul.make_args(s.function)
                   if _is_placeholder(f.base if isinstance(f, sp.Pow) else f, context) and not free_indices(f) & over]
        body = sp.Mul(*[f for f in sp.Mul.make_args(s.function) if f not in outside])
        # A placeholder the summed indices reach (1/exp(m_n) of a softmax's row n, inside Σ_n) joins the
        # exponentials beside it first: exp(E_np)/exp(m_n) = exp(E_np − m_n), which its own max bounds.
        inside = {b for b in (f.base if isinstance(f, sp.Pow) else f for f in sp.Mul.make_args(body))
                  if _is_placeholder(b, context) and free_indices(b) & over}   # factors only: a log keeps its own
        if inside:
            body = sp.powsimp(body.xreplace({p: sp.exp(_exp_of_placeholder(p, context)) for p in inside}),
                              combine="exp")
        found = _exponent(body, over)
        if found is None or _below_its_maximum(found[1], context):
            return sp.Mul(*outside) * Sum(body, *s.limits) if outside or inside else s
        f, u = found
        c, w = _scale(u)
        ks = [lim[0] for lim in s.limits if lim[0] in free_indices(w)]
        g = _group_weight(f, w, ks, groups, context)
        m = _maximum(w, ks, st, out, context, g)
        return sp.Mul(*outside) * _placeholder(m, c, context) * Sum(_shifted_term(f, c, w, m, g), *s.limits)

    return rhs.replace(lambda e: isinstance(e, sp.Sum), shift)


def _cancel_shifts(rhs, context: Context):
    """Placeholders taken out of sums of terms that all hold them and out of logs (``log(P Z) = m + log Z``),
    then written ``exp(m)`` and combined with the exponentials beside them: ``exp(x) / (exp(m) Z) = exp(x − m)/Z``."""
    if not rhs.has(*context.placeholders):
        return rhs

    def held(term):
        powers = {}
        for f in sp.Mul.make_args(term):
            b, k = (f.base, f.exp) if isinstance(f, sp.Pow) else (f, sp.S.One)
            if _is_placeholder(b, context) and k.is_number:
                powers[b] = powers.get(b, 0) + k
        return powers

    def take_out(e):
        if isinstance(e, sp.log):
            powers = held(e.args[0])
            if not powers:
                return e
            rest = e.args[0] / sp.Mul(*[p ** k for p, k in powers.items()])
            ms = sp.Add(*[k * _exp_of_placeholder(p, context) for p, k in powers.items()])
            return ms + sp.log(rest)
        terms = [held(t) for t in e.args]
        common = {}
        for p in set(terms[0]):
            ks = [t.get(p, 0) for t in terms]
            k = min(ks) if all(x > 0 for x in ks) else max(ks) if all(x < 0 for x in ks) else 0
            if k != 0:
                common[p] = k
        if not common:
            return e
        c = sp.Mul(*[p ** k for p, k in common.items()])
        return c * sp.Add(*[t / c for t in e.args])

    rhs = rhs.replace(lambda e: isinstance(e, (sp.Add, sp.log)) and e.has(*context.placeholders), take_out)
    rhs = rhs.replace(lambda e: isinstance(e, sp.Indexed) and _is_placeholder(e, context),
                      lambda e: sp.exp(_exp_of_placeholder(e, context)))
    rhs = rhs.xreplace({p: sp.exp(_exp_of_placeholder(p, context)) for p in context.placeholders})  # scalars
    maxima = {m for m, _ in context.placeholders.values()}

    def combines(e):
        return isinstance(e, sp.Mul) and any(isinstance(f, sp.exp) and f.has(*maxima) for f in e.args)

    def combine(e):
        # exp(x/τ) exp(−m/τ) = exp((x − m)/τ): the scale factored out again, so x/τ is never formed. A factor
        # exp(±m) beside a sum of terms goes into each term first ((exp(x) − exp(m) δ Z) exp(−m)): outside, it
        # overflows where each term's own combination does not.
        shifts = [f for f in e.args if isinstance(f, sp.exp) and f.has(*maxima)]
        adds = [f for f in e.args if isinstance(f, sp.Add) and f.has(sp.exp)]
        beside = [f for f in e.args if isinstance(f, sp.exp) and not f.has(*maxima)]
        if shifts and len(adds) == 1 and not beside:   # an exponential beside the sum takes the shift instead
            rest = sp.Mul(*[f for f in e.args if f is not adds[0] and not any(f is x for x in shifts)])
            shift = sp.Mul(*shifts)
            return rest * sp.Add(*[combine(t * shift) if combines(t * shift) else t * shift
                                   for t in adds[0].args])
        e = sp.powsimp(e, combine="exp")
        return e.replace(lambda x: isinstance(x, sp.exp) and x.args[0].has(*maxima),
                         lambda x: sp.exp(sp.factor_terms(x.args[0])))

    # Every product holding exp(±m), also inside sums (a gradient's Σ_i exp(E_qi − m_i) …).
    return rhs.replace(combines, combine)


def _clamp_weighted(rhs, context: Context):
    """``g exp(c (w − m))`` read at one position (a masked softmax's numerator ``M_sj exp(X_sj − m_s)``), ``m``
    the maximum of ``w`` over the positions where ``g ≠ 0``: the exponent clamped at 0, an identity where
    ``g ≠ 0`` (there ``w ≤ m``) that keeps ``0 · exp(w − m)`` at 0 where ``w − m`` would overflow. An
    exponential beside another factor keeps its true value (``exp(X_sj − m_s)`` alone may be inf, as is its value)."""
    if not context.masked or not rhs.has(*context.masked):
        return rhs

    def match(x, factors):
        """The clamped exponential for ``x = exp(a)``, or None."""
        for mbase, (w, g, over, made) in context.masked.items():
            reads = [r for r in x.args[0].atoms(sp.Indexed) if r.base == mbase] if isinstance(made, sp.Indexed) \
                else [mbase] if x.args[0].has(mbase) else []
            if len(reads) != 1:
                continue
            at = dict(zip(made.indices, reads[0].indices)) if isinstance(made, sp.Indexed) else {}
            c, v = _scale(x.args[0])
            candidates = [i for i in free_indices(x.args[0]) if i not in at.values()]
            for image in itertools.permutations(candidates, len(over)):
                sub = {**at, **dict(zip(over, image))}
                if any(extent(k) != extent(sub[k]) for k in over):
                    continue
                if sp.expand(v - (w.xreplace(sub) - reads[0])) != 0:
                    continue
                if all(h.xreplace(sub) in factors for h in sp.Mul.make_args(g)):
                    return sp.exp(c * sp.Min(v, 0))
        return None

    def clamp(e):
        factors = set(sp.Mul.make_args(e))
        return e.func(*[match(x, factors) or x if isinstance(x, sp.exp) else x for x in e.args])

    return rhs.replace(lambda e: isinstance(e, sp.Mul) and any(isinstance(x, sp.exp) and x.has(*context.masked)
                                                                for x in e.args), clamp)


def _shift_uses(rhs, context: Context):
    """``Z[i] → exp(m[i]) Z[i]`` for every shifted reduction (a placeholder for the exponential, cancelled later)."""
    for zbase, (mbase, c, positions) in context.shifted.items():
        if rhs.has(zbase):
            rhs = rhs.replace(lambda e, z=zbase: isinstance(e, sp.Indexed) and e.base == z,
                              lambda e, m=mbase, c=c, ps=positions: _placeholder(
                                  m[tuple(e.indices[p] for p in ps)], c, context) * e)
    return rhs


def _square_sum(rhs):
    """``(c, u, limits)`` if ``rhs = c Σ_{k…} u²``, else None."""
    found = _single_sum(rhs)
    if found is None or not (isinstance(found[1], sp.Pow) and found[1].exp == 2 and found[1].base.has(sp.Indexed)):
        return None
    return found[0], found[1].base, found[2]


def _scale_uses(rhs, scaled):
    """``Q[i] → m[i]² Q'[i]`` for every scaled sum of squares (and a plain read ``u`` of what it squares, ``X[a, b]``,
    ``→ m[a] ratio[a, b]``); then every power of the scale out to where it cancels (``_pull_scales``)."""
    used = {q: v for q, v in scaled.items() if rhs.has(q)}
    if not used:
        return rhs
    for qbase, twin in used.items():
        if not any(isinstance(e, sp.Indexed) and e.base == qbase for e in rhs.atoms(sp.Indexed)):
            rhs = rhs.xreplace({qbase: twin.scale ** 2 * twin.scaled})   # a scalar
        else:
            rhs = rhs.replace(lambda e, q=qbase: isinstance(e, sp.Indexed) and e.base == q,
                              lambda e, t=twin: t.scale[e.indices] ** 2 * t.scaled[e.indices])
        rhs = rhs.replace(twin.is_read, twin.read)
    return _pull_scales(rhs, {t.scale for t in used.values()})


@dataclass(frozen=True)
class Twin:
    """A scaled sum of squares ``Q = c Σ_k u²``: ``Q'`` (``scaled``) holds ``c Σ_k (u/m)²`` with ``m`` (``scale``)
    the largest |u|; ``ratio`` holds ``u/m`` where ``u`` is a plain read (else None)."""

    scaled: sp.IndexedBase
    scale: sp.IndexedBase
    u: sp.Expr
    ratio: sp.Indexed | None
    at: tuple          # the scale's indices (the statement's own) as read in u

    def is_read(self, e) -> bool:
        return self.ratio is not None and isinstance(e, sp.Indexed) and e.base == self.u.base

    def read(self, e):
        """A read of u at other indices, as ``m ratio`` there (each a value at most one times the scale)."""
        to = dict(zip(self.u.indices, e.indices))
        scale = self.scale[tuple(to[i] for i in self.at)] if self.at else self.scale
        return scale * self.ratio.base[tuple(to[i] for i in self.ratio.indices)]


def _pull_scales(rhs, scales):
    """Each scale read ``m`` as ``M μ`` (``M = max(m, 1)``, ``μ = min(m, 1)``), and every power of ``M`` taken out
    of the sums, products and powers that hold it, so that what remains multiplies numbers at most one by
    ``M`` to a nonpositive power: a sum (a max, a min, a select's values) is ``M^d Σ_i t_i M^(d_i − d)`` with ``d``
    its terms' largest degree
    (``√(ε + m² Q') = M √(ε/M² + μ² Q')``); the powers of ``M`` meet where they cancel (``X/m² · m``, which
    underflowed before its ``· m`` at the largest X, is ``μ ratio``). ``M`` leaves a sum over an index it
    carries only by cancelling there; what it cannot pass (a function) keeps it inside."""
    reads = sorted({e for e in rhs.atoms(sp.Indexed) if e.base in scales}, key=str)
    reads += sorted((b for b in scales if rhs.has(b) and not any(r.base == b for r in reads)), key=str)
    if not reads:
        return rhs
    big = {r: sp.Dummy(f"M_{r}", positive=True) for r in reads}
    small = {r: sp.Dummy(f"mu_{r}", positive=True) for r in reads}
    body = rhs.xreplace({r: big[r] * small[r] for r in reads})
    # The indices a scale is read at (m[p + 1] is bound by Σ_p too).
    bound_by = {big[r]: {x for i in getattr(r, "indices", ()) for x in i.free_symbols} for r in reads}

    def out(degrees):
        return sp.Mul(*[M ** d for M, d in sorted(degrees.items(), key=lambda kv: str(kv[0])) if d != 0])

    def common(terms):
        """The largest degree of each M among the terms, and each term's rest times M to what it lacks of it."""
        top = {M: max(d.get(M, 0) for d, _ in terms) for M in set().union(*(d for d, _ in terms))}
        return top, [r * out({M: d.get(M, 0) - k for M, k in top.items()}) for d, r in terms]

    def pull(e):
        """(degrees, rest) with e = Π M^degree · rest."""
        if not e.has(*big.values()):
            return {}, e
        if e in bound_by:
            return {e: sp.S.One}, sp.S.One
        if isinstance(e, sp.Mul):
            degrees, rest = {}, []
            for a in e.args:
                d, r = pull(a)
                for M, k in d.items():
                    degrees[M] = degrees.get(M, 0) + k
                rest.append(r)
            return degrees, sp.Mul(*rest)
        if isinstance(e, sp.Pow) and e.exp.is_Rational:
            d, r = pull(e.base)
            return {M: k * e.exp for M, k in d.items()}, r ** e.exp
        if isinstance(e, (sp.Add, sp.Max, sp.Min)):   # M > 0: max(M^d a, M^d b) = M^d max(a, b)
            top, rests = common([pull(a) for a in e.args])
            return top, e.func(*rests)
        if isinstance(e, sp.Piecewise):
            top, rests = common([pull(v) for v, _ in e.args])
            return top, sp.Piecewise(*[(r, whole(c)) for r, (_, c) in zip(rests, e.args)])
        if isinstance(e, Sum):
            d, r = pull(e.function)
            summed = {x for lim in e.limits for x in lim[0].free_symbols}
            inside = {M: k for M, k in d.items() if bound_by[M] & summed}
            return {M: k for M, k in d.items() if M not in inside}, Sum(r * out(inside), *e.limits)
        if isinstance(e, sp.Abs):
            d, r = pull(e.args[0])
            return d, sp.Abs(r)
        # What M cannot pass (a function, a select and its conditions): each argument on its own.
        return {}, e.func(*[whole(a) for a in e.args]) if e.args else e

    def whole(e):
        if not isinstance(e, sp.Expr):   # a condition, a (value, condition) pair: its parts, never multiplied
            return e.func(*[whole(a) for a in e.args]) if e.args and e.has(*big.values()) else e
        d, r = pull(e)
        return out(d) * r

    def rejoin(e):   # M^k μ^k, the same power of both, among a product's own factors: m^k
        factors = list(e.args)
        for r in reads:
            powers = {a.as_base_exp()[0]: a.as_base_exp()[1] for a in factors}
            k = powers.get(big[r])
            if k is not None and powers.get(small[r]) == k:
                factors = [a for a in factors if a.as_base_exp()[0] not in (big[r], small[r])] + [r ** k]
        return sp.Mul(*factors)

    body = whole(body).replace(lambda e: isinstance(e, sp.Mul), rejoin)
    return body.xreplace({**{big[r]: sp.Max(r, 1) for r in reads}, **{small[r]: sp.Min(r, 1) for r in reads}})


def _expand_log_of_quotients(rhs, definitions):
    """``log`` of an expression holding a quotient intermediate (``P = e^a/Z``, ``P = 1/(1 + e^{−x})``):
    the intermediate inlined, the argument brought over one denominator and the log expanded, so a
    probability that rounds to 0 or 1 never reaches ``log`` (``log(1 − σ(x)) = −x − log(1 + e^{−x})``)."""
    def quotients(e):
        return [x for x in e.atoms(sp.Indexed) if x.base in definitions
                and isinstance(definitions[x.base].rhs, (sp.Mul, sp.Pow)) and definitions[x.base].rhs.has(sp.exp)
                and any(p.exp.is_negative for p in definitions[x.base].rhs.atoms(sp.Pow))]

    def is_quotient_log(e):
        return isinstance(e, sp.log) and bool(quotients(e.args[0]))

    def expand(e):
        inline = {}
        for x in quotients(e.args[0]):
            d = definitions[x.base]
            inline[x] = d.rhs.xreplace(dict(zip(d.indices, x.indices)))
        arg = e.args[0].xreplace(inline)
        if not isinstance(e.args[0], sp.Indexed):
            arg = sp.together(arg)
        return sp.expand_log(sp.log(arg), force=True)

    return rhs.replace(is_quotient_log, expand)


class Erfc(sp.erfc):
    """``erfc`` that keeps its argument: SymPy turns ``erfc(−z)`` into ``2 − erfc(z)``, the cancellation avoided here."""

    @classmethod
    def eval(cls, arg):
        return None

    def _index_text(self, printer):
        return f"erfc({printer._print(self.args[0])})"

    def _latex(self, printer, exp=None):
        return powered(rf"\operatorname{{erfc}}\left({printer._print(self.args[0])}\right)", exp)


def _erf_complements(rhs):
    """``c (1 + erf(z))`` → ``c erfc(−z)``; ``c (1 − erf(z))`` → ``c erfc(z)``: no cancellation in the tails."""
    def rewrite(add):
        terms = list(add.args)
        for t in terms:
            for f in sp.Mul.make_args(t):
                if not isinstance(f, sp.erf):
                    continue
                cof = t / f
                for sign, other in ((1, cof), (-1, -cof)):
                    if other in terms:
                        rest = list(terms)
                        rest.remove(t)
                        rest.remove(other)
                        return sp.Add(cof * Erfc(-f.args[0] if sign == 1 else f.args[0]) * sign, *rest)
        return add

    return rhs.replace(lambda e: isinstance(e, sp.Add) and e.has(sp.erf), rewrite)


def _expm1(rhs):
    """``c e^a − c`` → ``c expm1(a)``: no cancellation when a is near 0."""
    def rewrite(add):
        terms = list(add.args)
        for n, t in enumerate(terms):
            c, rest = t.as_coeff_Mul()
            if isinstance(rest, sp.exp) and -c in terms:
                others = [u for m, u in enumerate(terms) if m != n and m != terms.index(-c)]
                return sp.Add(c * cf.expm1(rest.args[0]), *others)
        return add

    return rhs.replace(lambda e: isinstance(e, sp.Add) and e.has(sp.exp), rewrite)


def _log1p(rhs):
    """``log(1 + a)`` → ``log1p(a)``: no cancellation when a is small."""
    return rhs.replace(lambda e: isinstance(e, sp.log) and isinstance(e.args[0], sp.Add) and 1 in e.args[0].args,
                       lambda e: cf.log1p(e.args[0] - 1))


def _threshold(pw):
    """``(a, b, u, c)`` for ``Piecewise((a, u > c), (b, True))`` with a number c, else None."""
    if len(pw.args) != 2 or not isinstance(pw.args[0].cond, sp.StrictGreaterThan):
        return None
    (a, cond), (b, _) = pw.args
    u, c = cond.args
    return (a, b, u, c) if c.is_number else None


def _vanishes(e) -> bool:
    return budget.attempt(sp.simplify, e, "check a branch at its threshold", max_size=60) == 0


def _split_at_threshold(rhs):
    def split(pw):
        t = _threshold(pw)
        if t is None or not isinstance(t[2], sp.Indexed):
            return pw
        a, b, u, c = t
        if not (_vanishes(a.xreplace({u: c})) and _vanishes(b.xreplace({u: c}))):
            return pw
        return a.xreplace({u: sp.Max(u, c)}) + b.xreplace({u: sp.Min(u, c)})

    return rhs.replace(lambda e: isinstance(e, sp.Piecewise), split)


_GROWING = (sp.exp, cf.expm1, sp.cosh, sp.sinh)


def _clamp_untaken_branches(rhs):
    """In each branch, the subject inside an exponential is clamped to where that branch is taken."""
    def clamp(pw):
        found = branch_domains(pw)
        if found is None:
            return pw
        v, domains = found
        branches = []
        for (value, cond), dom in zip(pw.args, domains):
            lo, hi = (dom.inf, dom.sup) if isinstance(dom, sp.Interval) else (-sp.oo, sp.oo)
            bounded = v
            if hi.is_finite:
                bounded = sp.Min(bounded, hi)
            if lo.is_finite:
                bounded = sp.Max(bounded, lo)
            if bounded != v:
                value = value.replace(lambda e: isinstance(e, _GROWING) and e.args[0].has(v),
                                      lambda e: e.func(e.args[0].xreplace({v: bounded})))
            branches.append((value, cond))
        return sp.Piecewise(*branches)

    return rhs.replace(lambda e: isinstance(e, sp.Piecewise), clamp)


def _common_terms_out_of_piecewise(rhs):
    """Piecewise((a + c, p), (b + c, True)) → c + Piecewise((a, p), (b, True))."""
    def pull(pw):
        common = None
        for value, _ in pw.args:
            terms = set(sp.Add.make_args(value))
            common = terms if common is None else common & terms
        if not common:
            return pw
        c = sp.Add(*sorted(common, key=sp.default_sort_key))
        return c + sp.Piecewise(*[(v - c, cond) for v, cond in pw.args])

    return rhs.replace(lambda e: isinstance(e, sp.Piecewise), pull)


def _temporaries(st, out: list, context: Context):
    """A maker of arrays computed just before ``st``: ``<name>_exp``, ``<name>_exp2``, … (one per value: the
    four gates of an LSTM's dA read one e^{−|A|})."""
    made = {}

    def make(value):
        if value in made:
            return made[value]
        name = f"{st.name}_exp"
        n = 1
        while name in context.names:
            n += 1
            name = f"{st.name}_exp{n}"
        context.names.add(name)
        order = [i for i in st.indices if i in value.free_symbols]
        order += sorted((i for i in free_indices(value) if i not in order), key=str)
        base = sp.IndexedBase(name, real=True)
        element_ = base[tuple(order)] if order else base
        out.append(Statement(element_, value, st.serves))
        made[value] = element_
        return element_

    return make


def _fresh(name: str, context: Context) -> str:
    """``name``, or ``name_2``, ``name_3``, … : the first not taken by the user or by an earlier rewrite."""
    n, k = name, 1
    while n in context.names:
        k += 1
        n = f"{name}_{k}"
    context.names.add(n)
    return n


def _scaled_twin(st, squares, out: list, context: Context):
    """Statements for ``m = max_k |u|`` (1 if 0) and ``Q' = c Σ_k (u/m)²`` before ``Q = c Σ_k u²``."""
    c, u, limits = squares
    ks = tuple(lim[0] for lim in limits)
    base = st.lhs.base if isinstance(st.lhs, sp.Indexed) else st.lhs
    ix = tuple(st.indices)

    def name(suffix):
        return _fresh(f"{base.label}_{suffix}", context)

    biggest = sp.IndexedBase(name("absmax"), real=True)
    m = sp.IndexedBase(name("scale"), positive=True)
    qs = sp.IndexedBase(name("scaled"), real=True)
    at = (lambda b: b[ix]) if ix else (lambda b: b)
    out.append(Statement(at(biggest), MaxWithZeros(sp.Abs(u), *ks), st.serves))
    out.append(Statement(at(m), sp.Piecewise((at(biggest), at(biggest) > 0), (1, True)), st.serves))
    # The ratio as its own array: inside a square SymPy would write u²/m², which overflows again.
    ratio = sp.IndexedBase(name("ratio"), real=True)[natural_order(u, ix + ks)]
    out.append(Statement(ratio, u / at(m), st.serves))
    out.append(Statement(at(qs), c * Sum(ratio ** 2, *limits), st.serves))
    # A plain read over the whole tensor (the ratio is then there for every read of it).
    shape = getattr(u.base, "shape", None) if isinstance(u, sp.Indexed) else None
    plain = shape is not None and len(shape) == len(u.indices) \
        and all(isinstance(i, sp.Idx) and extent(i) == n for i, n in zip(u.indices, shape)) \
        and len(set(u.indices)) == len(u.indices) and set(ix) <= set(u.indices)
    context.scaled[base] = Twin(qs, m, u, ratio if plain else None, ix)
    return at(m) ** 2 * at(qs)


def stabilise(statements, context: Context | None = None):
    """The statements, rewritten; ``context`` carries shifted reductions into later kernels."""
    context = context if context is not None else Context()
    out = []
    for st in statements:
        # Logs first: they inline definitions as the forward states them, before any rewrite of names.
        rhs = _expand_log_of_quotients(st.rhs, context.definitions)
        rhs = _shift_uses(rhs, context)
        rhs = _scale_uses(rhs, context.scaled)
        squares = _square_sum(rhs) if st.indices or isinstance(st.lhs, sp.IndexedBase) else None
        if squares is not None:
            # Q itself, for a caller that asks for it (a running variance), is read off its twin: m² Q' is
            # Σ u² (finite where Σ u² is, and no second pass over u).
            rhs = _scaled_twin(st, squares, out, context)
        # An intermediate that is one exponential sum is stored shifted (its uses read exp(m) Z); an output, a
        # gradient, or what the forward returns holds its true value (its sums shifted inside, below).
        whole = st.indices and st.serves is None and st.name not in context.true_values
        found = _exp_sum(rhs) if whole else None
        if found is not None:
            k, f, u, limits = found
            c, w = _scale(u)
            ks = [lim[0] for lim in limits if lim[0] in free_indices(w)]
            g = _group_weight(f, w, ks, _weight_groups(rhs), context)
            m = _maximum(w, ks, st, out, context, g)
            rhs = k * Sum(_shifted_term(f, c, w, m, g), *limits)
            context.shifted[st.lhs.base] = (base_of(m), c, tuple(st.indices.index(i) for i in m.indices))
        else:
            rhs = _shift_sums(rhs, st, out, context)
        rhs = _clamp_weighted(_cancel_shifts(rhs, context), context)
        rhs = _clamp_untaken_branches(rhs)
        rhs = normalise(rhs, _temporaries(st, out, context))
        rhs = _erf_complements(rhs)
        rhs = _split_at_threshold(_common_terms_out_of_piecewise(rhs))
        rhs = _log1p(_expm1(rhs))
        new = st.with_rhs(rhs)
        context.definitions[new.lhs.base if isinstance(new.lhs, sp.Indexed) else new.lhs] = st
        out.append(new)
    return out
