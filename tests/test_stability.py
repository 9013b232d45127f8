"""Large inputs: finite results and no catastrophic cancellation.

Activation gradients are compared with a 50-digit mpmath evaluation of the
derivative, relative error per element, for |x| up to 50.
"""
from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from runtime.kernels.calling import Kernels
from tests.conftest import BACKENDS, kernels_of

mpmath.mp.dps = 50
XS = np.concatenate([np.linspace(-50, 50, 201), [-1e-3, 0.0, 1e-3]])

# d/dx of each activation, in exact arithmetic (the test's own reference).
EXACT = {
    "sigmoid": lambda x: mpmath.exp(-x) / (1 + mpmath.exp(-x)) ** 2,
    "tanh": lambda x: 1 / mpmath.cosh(x) ** 2,
    "elu": lambda x: mpmath.mpf(1) if x > 0 else mpmath.exp(x),
    "relu": lambda x: mpmath.mpf(1) if x > 0 else mpmath.mpf(0),
    "leaky_relu": lambda x: mpmath.mpf(1) if x > 0 else mpmath.mpf("0.01"),
    "softplus": lambda x: 1 / (1 + mpmath.exp(-x)),
    "silu": lambda x: (1 + mpmath.exp(-x) + x * mpmath.exp(-x)) / (1 + mpmath.exp(-x)) ** 2,
}


def _as_backend(a, backend, dtype):
    if backend == "numpy":
        return a.astype(dtype)
    return torch.tensor(a, dtype={np.float64: torch.float64, np.float32: torch.float32}[dtype])


def _backward(name, backend, X):
    k = Kernels(name, backend)
    env = k.forward({"X": X})
    return env["Y"], k.backward(X * 0 + 1, env)["dX"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(EXACT))
def test_activation_gradients_accurate_to_the_last_digits(name, backend):
    X = _as_backend(XS[None, :], backend, np.float64)
    _, dX = _backward(name, backend, X)
    dX = np.asarray(dX).ravel()
    exact = np.array([float(EXACT[name](mpmath.mpf(float(x)))) for x in XS])
    rel = np.abs(dX - exact) / np.maximum(np.abs(exact), np.finfo(np.float64).tiny)
    worst = int(np.argmax(rel))
    assert rel[worst] <= 1e-13, f"x = {XS[worst]}: relative error {rel[worst]:.2e}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "elu", "relu", "softmax", "leaky_relu", "softplus", "silu"])
def test_float32_stays_finite(name, backend):
    X = _as_backend(XS[None, :], backend, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # exp/cosh may overflow to inf on the way to 0
        Y, dX = _backward(name, backend, X)
    assert np.all(np.isfinite(np.asarray(Y))) and np.all(np.isfinite(np.asarray(dX)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_with_huge_logits(backend, dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 5)) * 1000.0
    mod = kernels_of("softmax", backend)
    Y = mod.softmax_forward(_as_backend(X, backend, dtype))
    dX = mod.softmax_backward(_as_backend(rng.standard_normal((6, 5)), backend, dtype), Y=Y)
    ref = torch.softmax(torch.tensor(X), dim=1).numpy()
    assert np.all(np.isfinite(np.asarray(Y))) and np.all(np.isfinite(np.asarray(dX)))
    np.testing.assert_allclose(np.asarray(Y, dtype=np.float64), ref, atol=1e-6 if dtype == np.float32 else 1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_cross_entropy_with_huge_logits(backend, dtype):
    """log-softmax, not log(softmax): a probability that underflows never reaches log."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 10)) * 1000.0
    T = np.eye(10)[rng.integers(0, 10, 8)]
    mod = kernels_of("softmax_cross_entropy", backend)
    k = Kernels("softmax_cross_entropy", backend)
    env = k.forward({"X": _as_backend(X, backend, dtype), "T": _as_backend(T, backend, dtype)})
    L, dX = env["L"], k.backward(1.0, env)["dX"]
    Xt = torch.tensor(X, requires_grad=True)
    ref = F.cross_entropy(Xt, torch.tensor(T))
    (g,) = torch.autograd.grad(ref, Xt)
    assert np.isfinite(float(L)) and np.all(np.isfinite(np.asarray(dX)))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(float(L), ref.item(), rtol=rtol)
    np.testing.assert_allclose(np.asarray(dX, dtype=np.float64), g.numpy(), atol=rtol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softplus_never_overflows(backend):
    X = _as_backend(np.array([[-1e4, -80.0, 0.0, 80.0, 1e4]]), backend, np.float32)  # e^-80 is still a normal float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Y = kernels_of("softplus", backend).softplus_forward(X)  # max(X, 0) + log1p(exp(-|X|)): nothing overflows
    with np.errstate(over="ignore"):  # the gradient's exp(-X) may pass through inf on its way to the true 0
        _, dX = _backward("softplus", backend, X)
    np.testing.assert_allclose(np.asarray(Y), [[0.0, np.exp(-80.0), np.log(2.0), 80.0, 1e4]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(dX), [[0.0, np.exp(-80.0), 0.5, 1.0, 1.0]], rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_branch_not_taken_does_not_overflow(backend):
    """ELU computes both branches (where); exp of a large positive X would overflow in the unused one."""
    X = _as_backend(np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]]), backend, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise"):  # underflow to 0 is the true value
            Y, dX = _backward("elu", backend, X)
    np.testing.assert_allclose(np.asarray(Y), [[-1.0, -1.0, 0.0, 50.0, 1000.0]])
    np.testing.assert_allclose(np.asarray(dX), [[0.0, np.exp(np.float32(-50)), 1.0, 1.0, 1.0]], rtol=1e-6)
