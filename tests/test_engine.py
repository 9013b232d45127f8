"""The engine's own rules: sifting, folding, assumptions, chain rule, step records."""
from __future__ import annotations

import copy

import sympy as sp

from derive import registry
from derive.engine.derivation import derive
from derive.engine.notation import Forward, Sum
from derive.engine.sifting import sift

N, M = sp.symbols("N M", integer=True, positive=True)
i, j, k = sp.Idx("i", N), sp.Idx("j", N), sp.Idx("k", N)
m = sp.Idx("m", M)
a = sp.IndexedBase("a", real=True)


def test_sifting_picks_the_matching_term():
    assert sift(sp.Sum(a[k] * sp.KroneckerDelta(k, j), (k, 0, N - 1))) == a[j]
    # Two deltas, two sums, any order of limits.
    e = sp.Sum(a[k] * a[i] * sp.KroneckerDelta(i, j) * sp.KroneckerDelta(k, i), (k, 0, N - 1), (i, 0, N - 1))
    assert sift(e) == a[j] ** 2


def test_sifting_needs_the_index_inside_the_range():
    # m ranges over M, not N: δ_km cannot be sifted over k (no range guard is invented).
    e = sp.Sum(a[k] * sp.KroneckerDelta(k, m), (k, 0, N - 1))
    assert sift(e).has(sp.KroneckerDelta)


def test_sum_normal_form():
    from derive.engine.ir import Sum as EngineSum  # the sums the engine builds (ir.Sum)

    e = sift(sp.Sum(3 * a[j] * (a[k] + 1), (k, 0, N - 1)))
    assert e == 3 * a[j] * EngineSum(a[k], (k, 0, N - 1)) + 3 * N * a[j]


def test_centred_sum_vanishes_by_folding_the_mean():
    # dσ²/dX needs Σ_s (X_sj − μ_j) = 0, which follows from folding Σ_s X_sj into S μ_j.
    bn = registry.load("batch_norm")
    d = derive(bn)
    lemma = {str(lhs.expr.base.label): value for lhs, _, value in d.lemmas["dX"]}
    assert not lemma["var"].has(sp.Sum)


def test_fused_softmax_cross_entropy_uses_the_assumption():
    d = derive(registry.load("softmax_cross_entropy"))
    reasons = [s.reason for s in d.gradients[0].steps]
    g = d.gradients[0]
    assert str(g.expr) == "(P[p, q] - T[p, q])/S"
    assert "write in the forward's saved quantities" in reasons
    # Without Σ_k T_sk = 1 the result keeps the sum.
    f = registry.load("softmax").chain("no_assumption", "", registry.load("cross_entropy"), link="X", rename="P")
    assert derive(f).gradients[0].expr.has(sp.Sum)


def test_batch_norm_reaches_the_three_term_form():
    g = derive(registry.load("batch_norm")).gradients[0]
    e = g.expr
    assert not e.has(sp.Symbol("mean")) and not any(x.base.label == sp.Symbol("X") for x in e.atoms(sp.Indexed))
    sums = e.atoms(sp.Sum)
    assert len(sums) == 2  # Σ_s dY_sq and Σ_s dY_sq X̂_sq
    assert [s.reason for s in g.steps][:4] == [
        "vector-Jacobian product", "chain rule through the intermediates", "differentiate", "sift the Kronecker deltas"]


def test_a_forward_with_intermediates_chains_through_them():
    f = Forward("square_of_sum", "")
    S, D = f.dims("S D")
    s, d = f.indices(s=S, d=D)
    X = f.input("X", S, D)
    t = f.let("t", (s,), Sum(X[s, d], d))
    f.output("Y", (s,), t[s] ** 2)
    g = derive(f).gradients[0]
    # dX_pq = 2 t_p dY_p: the intermediate t stays a symbol.
    assert str(g.expr) == "2*dY[p]*t[p]"


def test_threshold_split_applies_only_where_both_branches_vanish():
    from derive.engine.kernel import Statement
    from derive.engine.numerics import stabilise

    Y, dY, X = (sp.IndexedBase(n, real=True) for n in ("Y", "dY", "X"))
    alpha = sp.Symbol("alpha", positive=True)
    elu = sp.Piecewise((X[i], X[i] > 0), (alpha * (sp.exp(X[i]) - 1), True))
    (st,) = stabilise([Statement(Y[i], elu)])
    assert not st.rhs.has(sp.Piecewise) and st.rhs.has(sp.Max, sp.Min)
    # dY · [X > 0] does not vanish at X = 0 on the taken side: it stays a select.
    (st,) = stabilise([Statement(Y[i], sp.Piecewise((dY[i], X[i] > 0), (0, True)))])
    assert st.rhs.has(sp.Piecewise)
    for x in (-3.0, 0.0, 2.5):
        assert float(st.rhs.subs({X[i]: x, dY[i]: 7.0})) == (7.0 if x > 0 else 0.0)


def test_a_select_conditioned_on_an_inner_sums_index_stays_in_that_sum():
    """SymPy's Sum folds a Piecewise out of a nested sum even when its condition reads that sum's index; the
    engine's Sum keeps it there, through construction and SymPy's rebuilding (xreplace)."""
    from derive.engine.ir import Sum

    S, D = sp.symbols("S D", integer=True, positive=True)
    s, j = sp.Idx("s", S), sp.Idx("j", D)
    X, dY = sp.IndexedBase("X", real=True), sp.IndexedBase("dY", real=True)
    inner = Sum(sp.Piecewise((X[s, j], X[s, j] > 0), (0, True)), (j, 0, D - 1))
    assert isinstance(sp.Sum(dY[s] * inner, (s, 0, S - 1)).function, sp.Piecewise)  # SymPy's own: folded out
    outer = Sum(dY[s] * inner, (s, 0, S - 1))
    for e in (outer, outer.xreplace({dY: sp.IndexedBase("G", real=True)})):
        assert isinstance(e, Sum) and not isinstance(e.function, sp.Piecewise)
        assert e.function.has(inner.func(inner.function, *inner.limits))


def test_expanding_leaves_each_divisor_as_written():
    """(ε + σ²)⁻² stays a power of ε + σ²: expanded to 1/(ε² + 2εσ² + σ⁴) it would no longer cancel against the
    numerators (batch norm's second order grew var⁴ and var³ terms that overflow)."""
    from derive.engine.rewrite import expand_over

    a, b, c, eps, var = sp.symbols("a b c epsilon var", positive=True)
    e = expand_over((a + b) * c / (eps + var) ** 2 + (a + b) ** 2 / (c * (eps + var)))
    d = eps + var
    assert e == a * c / d ** 2 + b * c / d ** 2 + a ** 2 / (c * d) + 2 * a * b / (c * d) + b ** 2 / (c * d)
    assert sp.simplify(e * (eps + var) ** 2 - (a + b) * c - (a + b) ** 2 * (eps + var) / c) == 0


def test_the_second_order_of_batch_norm_has_no_powers_of_the_variance_beyond_its_own():
    """Its hvp divides by ε + σ² and its square root only: no expanded cube of the variance."""
    from derive.engine.second import second_order

    forward = copy.copy(registry.load("batch_norm"))   # its own order, not the registry's
    forward.order = 1
    hX = next(g for g in derive(second_order(derive(forward))).gradients if g.name == "hX")
    powers = {p.exp for p in hX.expr.atoms(sp.Pow) if any(str(b.label) == "var" for b in p.base.atoms(sp.IndexedBase))}
    assert powers and all(abs(x) <= 1 for x in powers), powers


def test_a_second_order_result_is_written_as_a_product_of_upstream_and_direction():
    """k u w + u A + w B + C = k (u + B/k)(w + A/k) + C − A B/k: softmax's hvp is 0 on one class, and finite at the
    largest dY, only in the product form (the expanded terms leave rounding, and overflow apart)."""
    from types import SimpleNamespace

    from derive.engine.rewrite import complete_products

    r, u = sp.symbols("r u", cls=sp.Idx)
    Y, dY, vX = (sp.IndexedBase(n, real=True) for n in ("Y", "dY", "vX"))
    t1, t2, w = sp.symbols("t1 t2 w", real=True)   # Σ Y v, Σ Y dY, Σ Y dY v
    second = SimpleNamespace(upstream_inputs=("dY",), upstream_names={"dX": "vX"})
    e = sp.expand(Y[r, u] * (dY[r, u] * vX[r, u] - dY[r, u] * t1 - vX[r, u] * t2 + 2 * t1 * t2 - w))
    got = complete_products(e, second)
    assert sp.expand(got - e) == 0
    product = sp.Mul(dY[r, u] - t2, vX[r, u] - t1)
    assert got.has(product) and not e.has(product)
    first = SimpleNamespace(upstream_inputs=(), upstream_names={})
    assert complete_products(e, first) == e   # a first-order gradient is linear in its upstream: left as it is


def test_a_product_is_not_completed_where_it_would_add_a_term_or_a_division():
    """(G + v)(K + dY) − G K would overflow at G = K = 1e200 where dY v + dY G + v K does not; a k that does not
    cancel out of A/k would divide by what may be 0; a read inside max(·) is not linear: each is left alone."""
    from types import SimpleNamespace

    from derive.engine.rewrite import complete_products

    r, u = sp.symbols("r u", cls=sp.Idx)
    dY, vX, G, K, X, V = (sp.IndexedBase(n, real=True) for n in ("dY", "vX", "G", "K", "X", "V"))
    eps = sp.Symbol("eps", positive=True)
    second = SimpleNamespace(upstream_inputs=("dY",), upstream_names={"dX": "vX"})
    d, v, root = dY[r, u], vX[r, u], sp.sqrt(V[u] + eps)
    for e in (d * v + d * G[u] + v * K[u],
              V[u] * d * v + V[u] * G[u] * X[r, u] * d / root + K[u] * v + G[u] * K[u] * X[r, u] / root,
              d * v + d * G[u] + v * K[u] + sp.Max(d, 0) * X[r, u]):
        assert complete_products(e, second) == e
