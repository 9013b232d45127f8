"""Comparing a user forward's generated kernels with autograd through its PyTorch reference (float64)."""
from __future__ import annotations

import numpy as np
import torch

from tests.conftest import as_tensor

TOL = 1e-10


def run_kernels(kernels, arrays, scalars, upstream, backend):
    """(output, gradients by name); with several outputs, ``upstream`` is a list (one per output, None: omitted)
    and the output a tuple of them."""
    wrap = (lambda a: a) if backend == "numpy" else as_tensor
    env = kernels.forward({n: wrap(a) for n, a in arrays.items()}, **scalars)
    lift = lambda u: u if u is None else float(u) if np.ndim(u) == 0 else wrap(u)   # a loss's dL: a number
    several = len(kernels.OUTPUTS) > 1
    up = {n: lift(u) for n, u in zip(kernels.UPSTREAMS, upstream)} if several else lift(upstream)
    grads = kernels.backward(up, env, **scalars)
    as_np = lambda v: v if isinstance(v, np.ndarray) or np.isscalar(v) else v.detach().numpy()
    y = tuple(as_np(env[o]) for o in kernels.OUTPUTS) if several else as_np(env[kernels.OUTPUTS[0]])
    return y, {g: as_np(v) for g, v in grads.items()}


def autograd_reference(reference, forward, arrays, scalars, upstream):
    """As ``run_kernels``, by autograd through ``reference`` (which returns a tuple for several outputs)."""
    wrt = [t.name for t in forward.differentiable]
    xs = {n: as_tensor(a, requires_grad=n in wrt) for n, a in arrays.items()}
    y = reference(**xs, **scalars)
    several = isinstance(y, tuple)
    ys, ups = (y, upstream) if several else ((y,), [upstream])
    pairs = [(out, torch.as_tensor(u, dtype=torch.float64)) for out, u in zip(ys, ups) if u is not None]
    grads = torch.autograd.grad([o for o, _ in pairs], [xs[n] for n in wrt], [u for _, u in pairs])
    value = tuple(o.detach().numpy() for o in ys) if several else y.detach().numpy()
    return value, {f"d{n}": g.numpy() for n, g in zip(wrt, grads)}


def assert_close(got, want, what):
    if isinstance(want, tuple):   # several outputs
        assert isinstance(got, tuple) and len(got) == len(want), f"{what}: {len(want)} outputs expected"
        for n, (a, b) in enumerate(zip(got, want)):
            assert_close(a, b, f"{what}, output {n}")
        return
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    # Equal values agree, infinities too (a max over a window that lies wholly in the padding is -inf).
    same = got == want
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
        err = float(np.max(np.where(same, 0.0, np.abs(got - want)), initial=0.0))
    scale = float(np.max(np.abs(np.where(np.isfinite(want), want, 0.0)), initial=0.0))
    assert err <= TOL * (1.0 + scale), f"{what}: max abs error {err:.3e}"
