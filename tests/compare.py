"""Comparing a user forward's generated kernels with autograd through its PyTorch reference (float64)."""
from __future__ import annotations

import numpy as np
import torch

from tests.conftest import as_tensor

TOL = 1e-10


def run_kernels(kernels, arrays, scalars, upstream, backend):
    wrap = (lambda a: a) if backend == "numpy" else as_tensor
    env = kernels.forward({n: wrap(a) for n, a in arrays.items()}, **scalars)
    up = upstream if np.ndim(upstream) == 0 else wrap(upstream)
    grads = kernels.backward(up, env, **scalars)
    as_np = lambda v: v if isinstance(v, np.ndarray) or np.isscalar(v) else v.detach().numpy()
    return as_np(env[kernels.OUTPUTS[0]]), {g: as_np(v) for g, v in grads.items()}


def autograd_reference(reference, forward, arrays, scalars, upstream):
    wrt = [t.name for t in forward.differentiable]
    xs = {n: as_tensor(a, requires_grad=n in wrt) for n, a in arrays.items()}
    y = reference(**xs, **scalars)
    grads = torch.autograd.grad(y, [xs[n] for n in wrt], torch.as_tensor(upstream, dtype=torch.float64))
    return y.detach().numpy(), {f"d{n}": g.numpy() for n, g in zip(wrt, grads)}


def assert_close(got, want, what):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    # Equal values agree, infinities too (a max over a window that lies wholly in the padding is -inf).
    same = got == want
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
        err = float(np.max(np.where(same, 0.0, np.abs(got - want)), initial=0.0))
    scale = float(np.max(np.abs(np.where(np.isfinite(want), want, 0.0)), initial=0.0))
    assert err <= TOL * (1.0 + scale), f"{what}: max abs error {err:.3e}"
