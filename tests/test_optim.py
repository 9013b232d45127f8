"""The runtime's Adam against torch.optim.Adam, float64: parameters and state over several steps, updated in place."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from runtime.kernels.backend import Backend
from runtime.nets.network import Network
from runtime.training.optim import Adam
from tests.conftest import BACKENDS

# a convolution weight, a (1, n) bias, a 1-D scale, and a matrix larger than one NumPy block (16384 float64s)
SHAPES = [(6, 3, 3, 3), (1, 6), (6,), (201, 200)]


def network(backend: str, dtype: str, rng):
    """Layers with parameters of several shapes; the matrix is column-major, as a Linear weight is."""
    net = Network()
    net.backend = b = Backend(backend, dtype=dtype)
    net.layers = [SimpleNamespace(params={"w": b.asarray(rng.standard_normal(s))}, grads={}) for s in SHAPES]
    net.layers[-1].params["w"] = b.column_major(net.layers[-1].params["w"])
    return net


def address(a):
    return a.data_ptr() if isinstance(a, torch.Tensor) else a.__array_interface__["data"][0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("lr, hyper", [(1e-3, {}), (3e-2, {"betas": (0.8, 0.99), "eps": 1e-6})])
def test_adam_matches_torch_optim_in_place(backend, dtype, tol, lr, hyper):
    rng = np.random.default_rng(0)
    net = network(backend, dtype, rng)
    b = net.backend
    ref = [torch.nn.Parameter(torch.tensor(b.to_numpy(layer.params[k]))) for layer, k in net.parameters()]
    opt, ref_opt = Adam(net, lr, **hyper), torch.optim.Adam(ref, lr=lr, foreach=True, **hyper)
    before = [(layer.params[k], address(layer.params[k])) for layer, k in net.parameters()]
    for _ in range(12):
        for (layer, k), p in zip(net.parameters(), ref):
            g = rng.standard_normal(layer.params[k].shape) * rng.choice([1e-4, 1.0, 30.0])
            layer.grads[k] = b.asarray(g)  # row-major, also where the parameter is column-major
            p.grad = torch.tensor(g, dtype=p.dtype)
        opt.step()
        ref_opt.step()
    assert opt.t == 12
    for n, ((layer, k), p) in enumerate(zip(net.parameters(), ref)):
        assert layer.params[k] is before[n][0] and address(layer.params[k]) == before[n][1]
        state = ref_opt.state[p]
        for mine, theirs in ((layer.params[k], p), (opt.m[n], state["exp_avg"]), (opt.v[n], state["exp_avg_sq"])):
            a, r = b.to_numpy(mine).astype(np.float64), theirs.detach().numpy().astype(np.float64)
            assert np.max(np.abs(a - r)) <= tol * (1 + np.max(np.abs(r))), (n, k)


def test_torch_adam_without_the_fused_kernel_steps_as_torch_optim(monkeypatch):
    """A Torch build without torch._fused_adam_ (a private kernel) steps tensor by tensor: the same values."""
    monkeypatch.delattr(torch, "_fused_adam_")
    test_adam_matches_torch_optim_in_place("torch", "float64", 1e-12, 3e-2, {"betas": (0.8, 0.99), "eps": 1e-6})
