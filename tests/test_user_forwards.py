"""User-style forwards the engine has never seen (tests/user_forwards/), derived by the command line.

Each is checked against an independent PyTorch implementation of the same
module (tests/user_references.py): the forward's value, and the gradients of
autograd through that implementation, in float64, on both backends. At the
kinks, PyTorch's tie convention: the slope is the constant branch's (``F.relu``
at 0, ``torch.clamp`` at its bounds).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from derive.engine import extents
from runtime.calling import Kernels
from tests.conftest import BACKENDS, USER_MODULES, as_tensor, draw, load_user_forward, sizes_for
from tests.user_references import REFERENCES

TOL = 1e-10


def test_every_user_forward_has_a_reference():
    assert len(USER_MODULES) >= 10
    assert set(USER_MODULES) <= set(REFERENCES)


def _run(kernels, arrays, scalars, upstream, backend):
    wrap = (lambda a: a) if backend == "numpy" else as_tensor
    env = kernels.forward({n: wrap(a) for n, a in arrays.items()}, **scalars)
    up = upstream if np.ndim(upstream) == 0 else wrap(upstream)
    grads = kernels.backward(up, env, **scalars)
    as_np = lambda v: v if isinstance(v, np.ndarray) or np.isscalar(v) else v.detach().numpy()
    return as_np(env[kernels.OUTPUT]), {g: as_np(v) for g, v in grads.items()}


def _autograd(reference, forward, arrays, scalars, upstream):
    wrt = [t.name for t in forward.differentiable]
    xs = {n: as_tensor(a, requires_grad=n in wrt) for n, a in arrays.items()}
    y = reference(**xs, **scalars)
    grads = torch.autograd.grad(y, [xs[n] for n in wrt], torch.as_tensor(upstream, dtype=torch.float64))
    return y.detach().numpy(), {f"d{n}": g.numpy() for n, g in zip(wrt, grads)}


def _close(got, want, what):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    # Equal values agree, infinities too (a max over a window that lies wholly in the padding is -inf).
    same = got == want
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
        err = float(np.max(np.where(same, 0.0, np.abs(got - want)), initial=0.0))
    scale = float(np.max(np.abs(np.where(np.isfinite(want), want, 0.0)), initial=0.0))
    assert err <= TOL * (1.0 + scale), f"{what}: max abs error {err:.3e}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", USER_MODULES)
def test_user_forward_matches_an_independent_pytorch_module(name, backend, user_kernels):
    forward = load_user_forward(name)
    kernels = Kernels(name, backend, loaded=user_kernels(name, backend))
    scalars = dict(kernels.SCALARS)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        sizes = sizes_for(forward, rng)
        arrays = draw(forward, sizes, rng)
        out_shape = extents.shape(forward.out.tensor.dims, sizes)
        upstream = rng.standard_normal(out_shape) if out_shape else 0.8
        y, grads = _run(kernels, arrays, scalars, upstream, backend)
        ref_y, ref_grads = _autograd(REFERENCES[name], forward, arrays, scalars, upstream)
        _close(y, ref_y, f"{name} forward (seed {seed})")
        assert set(grads) == set(ref_grads)
        for g in ref_grads:
            _close(grads[g], ref_grads[g], f"{name} {g} (seed {seed})")


# At a kink: PyTorch functions whose slope there is the constant branch's (relu at 0, clamp at its bounds).
TIES = {
    "hard_tanh": (lambda X: torch.clamp(X, -1.0, 1.0), {"X": [-1.0, 1.0, -2.0, 0.0, 2.0]}),
    "relu6": (lambda X: torch.clamp(X, 0.0, 6.0), {"X": [0.0, 6.0, -1.0, 3.0, 7.0]}),
    "hard_sigmoid": (lambda X: torch.clamp(X / 6 + 0.5, 0.0, 1.0), {"X": [-3.0, 3.0, -4.0, 0.0, 4.0]}),
    "prelu": (lambda X, a: torch.relu(X) - a * torch.relu(-X), {"X": [0.0, -1.0, 1.0], "a": [0.25]}),
    "hinge": (lambda X, T: torch.relu(1 - T * X).mean(), {"X": [1.0, 2.0, -1.0], "T": [1.0, 0.5, 1.0]}),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(TIES))
def test_slopes_at_the_kinks_follow_pytorch(name, backend, user_kernels):
    forward = load_user_forward(name)
    reference, values = TIES[name]
    kernels = Kernels(name, backend, loaded=user_kernels(name, backend))
    arrays = {}
    for t in forward.arguments:
        v = np.asarray(values[t.name], dtype=np.float64)
        arrays[t.name] = v.reshape(-1, 1) if len(t.dims) == 2 else v
    out = forward.out.tensor.dims
    upstream = 1.0 if not out else np.ones((len(values["X"]), 1))
    _, grads = _run(kernels, arrays, {}, upstream, backend)
    _, ref = _autograd(reference, forward, arrays, {}, upstream)
    for g in ref:
        np.testing.assert_array_equal(np.asarray(grads[g], dtype=np.float64), ref[g], err_msg=f"{name} {g}")


def test_a_pooled_intermediate_saves_its_arg_max(user_kernels):
    """The forward of pooled_tanh returns its pool's arg-max and the backward reads it (ir.window_key matches the
    window maximum whatever the backward names its indices)."""
    for backend in BACKENDS:
        k = user_kernels("pooled_tanh", backend)
        assert k.INDICES == ("P_argmax",) and "P_argmax" in k.SAVED and "P_argmax" in k.RETURNS
