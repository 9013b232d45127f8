"""Exponential sums shifted wherever they stand, and closed forms with no branch that is never taken (issue 15).

- Every ``Σ_k f exp(u)`` (inline, in a let, weighted by a mask, over two indices, under a temperature, in
  attention's double contraction) is computed as ``exp(m) Σ_k f exp(u − m)``, ``m = max_k u``, the ``exp(m)``
  cancelled: the user forwards stay equal to their PyTorch references (whose softmax and log-softmax are
  shifted) at logits ± 1000 in float64, where the unshifted sums are inf or 0.
- A ``Piecewise`` whose branches come from several selects (PReLU's ``max(0, x) + a min(0, x)``, Huber's
  ``|d| ≤ δ``) carries no impossible conjunction, no redundant bound, and no branch the earlier ones cover.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch

from derive.engine import extents
from derive.engine.emit import build
from derive.engine.normal_forms import clean_piecewise, condition_sets, prune_condition
from runtime.kernels.calling import Kernels
from tests.conftest import BACKENDS, draw, load_user_forward, sizes_for
from tests.compare import assert_close, autograd_reference, run_kernels
from tests.user_references import REFERENCES

SHIFTED = ["log_softmax_inline", "softmax_inline_temperature", "label_smoothing_ce", "masked_softmax",
           "masked_softmax_named", "masked_logsumexp", "softmax_two_axes", "softmax_temperature", "ce_temp_labels",
           "pooled_logsumexp"]


@pytest.mark.parametrize("offset", [1000.0, -1000.0])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", SHIFTED)
def test_exponential_sums_at_logits_far_from_zero(name, backend, offset, user_kernels):
    forward = load_user_forward(name)
    kernels = Kernels(name, backend, loaded=user_kernels(name, backend))
    scalars = dict(kernels.SCALARS)
    rng = np.random.default_rng(7)
    sizes = sizes_for(forward, rng, batch=3, feature=4)
    arrays = draw(forward, sizes, rng)
    arrays["X"] = arrays["X"] + offset
    out_shape = extents.shape(forward.out.tensor.dims, sizes)
    upstream = rng.standard_normal(out_shape) if out_shape else 0.8
    y, grads = run_kernels(kernels, arrays, scalars, upstream, backend)
    ref_y, ref_grads = autograd_reference(REFERENCES[name], forward, arrays, scalars, upstream)
    assert np.all(np.isfinite(y)) and all(np.all(np.isfinite(g)) for g in grads.values())
    assert_close(y, ref_y, f"{name} forward at X + {offset}")
    for g in ref_grads:
        assert_close(grads[g], ref_grads[g], f"{name} {g} at X + {offset}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["attention", "attention_named_sum"])
def test_attention_at_scores_of_a_thousand(name, backend, user_kernels):
    """|Q|, |K| up to 32: scores Σ_d Q K in the thousands (dQ was non-finite from |Q|, |K| ≈ 30 in float32; with
    the normaliser a named sum, dK and dV were shifted by a column maximum and overflowed)."""
    forward = load_user_forward(name)
    kernels = Kernels(name, backend, loaded=user_kernels(name, backend))
    rng = np.random.default_rng(3)
    sizes = sizes_for(forward, rng, batch=2)
    arrays = draw(forward, sizes, rng)
    for n in ("Q", "K"):
        arrays[n] = rng.uniform(20, 32, arrays[n].shape) * rng.choice([-1.0, 1.0], arrays[n].shape)
    upstream = rng.standard_normal(tuple(sizes[d] for d in forward.out.tensor.dims))
    y, grads = run_kernels(kernels, arrays, {}, upstream, backend)
    ref_y, ref_grads = autograd_reference(REFERENCES[name], forward, arrays, {}, upstream)
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    assert_close(y, ref_y, f"{name} forward")
    for g in ref_grads:
        assert_close(grads[g], ref_grads[g], f"{name} {g}")


def test_one_maximum_per_exponent():
    """The forward's max of the exponent is the backward's: numerator, denominator and the gradient's sums
    are shifted alike (the backward reads the forward's maximum rather than taking another)."""
    built = build(load_user_forward("attention"))
    forward, backward = built.kernels[:2]
    maxima = [st.name for k in (forward, backward) for st in k.statements if st.rhs.func.__name__ == "MaxWithZeros"]
    assert len(maxima) == 1
    assert maxima[0] in forward.results and maxima[0] in {a.name for a in backward.arguments}


x = sp.IndexedBase("X", real=True)[sp.Idx("s"), sp.Idx("j")]
delta = sp.Symbol("delta", positive=True)


def test_an_impossible_conjunction_is_dropped():
    pw = sp.Piecewise((2, (x > 0) & (x < 0)), (1, x < 0), (3, x > 0), (0, True))
    assert clean_piecewise(pw) == sp.Piecewise((1, x < 0), (3, x > 0), (0, True))


def test_redundant_bounds_are_pruned():
    assert prune_condition((x <= 0) & (x < 0)) == (x < 0)
    assert prune_condition((x >= 0) & (x <= 0)) == sp.Eq(x, 0)
    assert prune_condition((x > 0) & (x > -delta)) == (x > 0)       # δ > 0: x > 0 implies x > −δ
    assert prune_condition((x > 1) & (x < delta + 1)) == (x > 1) & (x < delta + 1)   # both needed


def test_branches_bounded_by_a_hyperparameter():
    """Huber's gradient: the three pieces of |d| ≤ δ are one interval, and the branch after d > 0 and d < 0
    is never taken."""
    d = x
    inside = sp.Eq(d, 0) | ((delta >= d) & (d > 0)) | ((delta >= -d) & (d < 0))
    pw = sp.Piecewise((d, inside), (delta, d > 0), (-delta, d < 0), (0, True))
    assert clean_piecewise(pw) == sp.Piecewise((d, (d >= -delta) & (d <= delta)), (delta, d > 0), (-delta, True))


@pytest.mark.parametrize("name", ["prelu", "huber", "hard_tanh"])
def test_derivation_steps_carry_no_branch_never_taken(name):
    built = build(load_user_forward(name))
    for g in built.derivation.gradients:
        for step in g.steps:
            for pw in step.rhs.atoms(sp.Piecewise):
                conds = [c for _, c in pw.args]
                assert all(prune_condition(c) == c for c in conds), (name, step.reason, pw)
                found = condition_sets(conds)
                if found is not None:
                    covered = sp.S.EmptySet
                    for s in found[1]:
                        assert sp.Complement(s, covered) != sp.S.EmptySet, (name, step.reason, pw)
                        covered = sp.Union(covered, s)


def _masked_at_the_maximum(rng, gap, rows=4, width=6):
    """Logits with one position ``gap`` above the rest in each row, the mask 0 there (and at one other place)."""
    X = rng.standard_normal((rows, width))
    M = rng.uniform(0.1, 1.0, (rows, width))
    for s in range(rows):
        top, other = rng.choice(width, 2, replace=False)
        X[s, top] += gap
        M[s, top] = M[s, other] = 0.0
    return X, M


MASKED = ["masked_softmax", "masked_softmax_named", "masked_logsumexp"]


@pytest.mark.parametrize("dtype, gap", [(np.float64, 1000.0), (np.float32, 100.0)])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", MASKED)
def test_mask_zero_at_the_row_maximum(name, backend, dtype, gap, user_kernels):
    """M = 0 at the row's largest logit, the kept logits ``gap`` below it: shifted by the maximum over every
    position, each kept exp(X − m) underflowed (0/0: Y and dX were nan; log 0). The maximum over the kept
    positions keeps them; exp(X − m) at the masked position, which would overflow, is multiplied by its 0 as 0.
    The reference is float64 autograd in log space (X + log M, −inf where M = 0) on the same rounded numbers."""
    forward = load_user_forward(name)
    kernels = Kernels(name, backend, loaded=user_kernels(name, backend))
    rng = np.random.default_rng(11)
    X, M = _masked_at_the_maximum(rng, gap)
    dY = rng.standard_normal(X.shape[:len(forward.out.tensor.dims)])   # Y_sj or Y_s
    X, M, dY = (a.astype(dtype) for a in (X, M, dY))
    ref_y, ref_grads = autograd_reference(REFERENCES[name], forward, {"X": X, "M": M}, {}, dY)
    wrap = (lambda a: a) if backend == "numpy" else torch.from_numpy
    env = kernels.forward({"X": wrap(X), "M": wrap(M)})
    dX = kernels.backward(wrap(dY), env)["dX"]
    y, dx, ref_dx = np.asarray(env["Y"], dtype=np.float64), np.asarray(dX, dtype=np.float64), ref_grads["dX"]
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    assert np.all(dx[M == 0] == 0)
    if dtype == np.float64:
        np.testing.assert_allclose(y, ref_y, rtol=1e-10, atol=0)
        np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-10 * np.abs(ref_dx).max())
    else:   # float32 arithmetic on logits near 100: a few ulps of the exponent, relative to the row's scale
        np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(dx, ref_dx, rtol=1e-4, atol=1e-5 * np.abs(ref_dx).max())


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_row_the_mask_drops_whole(backend, user_kernels):
    """Every M_sk = 0 in a row of logits near 1000: Σ_k 0 · exp(X_sk) = 0, so log of it is −inf, not nan
    (the row's maximum over no kept position is the row's minimum, at most 0: exp(m) is finite)."""
    kernels = Kernels("masked_logsumexp", backend, loaded=user_kernels("masked_logsumexp", backend))
    X = np.array([[1000.0, 999.0, 998.0], [1000.0, 0.0, 1.0]])
    M = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    wrap = (lambda a: a) if backend == "numpy" else torch.from_numpy
    with np.errstate(divide="ignore"):   # log 0
        y = np.asarray(kernels.forward({"X": wrap(X), "M": wrap(M)})["Y"])
    assert y[0] == -np.inf
    np.testing.assert_allclose(y[1], np.logaddexp(0.0, 1.0), rtol=1e-15)
