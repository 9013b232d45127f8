"""Backward kernels' ``into``: gradients added into the caller's arrays (SGD fused into the kernels), both backends.

Every value is compared with the plain call in float64: ``array + alpha * gradient``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from derive import registry
from tests.conftest import BACKENDS
from tests.test_kernels import Case

ALPHA = -0.37


def _call(case, into=None):
    args = {n: case.tensor(a) for n, a in case.arrays.items()}
    env = case.kernels.forward(args, **case.scalars)
    upstream = 1.0 if case.dY is None else case.tensor(case.dY)
    return env, case.kernels.backward(upstream, env, **case.scalars, into=into)


def _copy(a):
    return a.copy() if isinstance(a, np.ndarray) else a.clone()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", registry.MODULES)
def test_each_gradient_into_a_buffer(name, backend):
    case = Case(name, backend, "random", seed=3)
    _, plain = _call(case)
    rng = np.random.default_rng(4)
    for g, value in plain.items():
        start = rng.standard_normal(np.shape(case.numpy(value)))
        buffer = case.tensor(start.copy())
        _, got = _call(case, into={g: (buffer, ALPHA)})
        assert got[g] is None
        np.testing.assert_allclose(case.numpy(buffer), start + ALPHA * case.numpy(value), rtol=1e-12, atol=1e-12)
        for other, v in got.items():
            if other != g:
                np.testing.assert_allclose(case.numpy(v), case.numpy(plain[other]), rtol=1e-12, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", registry.MODULES)
def test_sgd_into_the_arrays_themselves(name, backend):
    """into={dp: (p, −lr)} for every gradient, p the very argument the kernels read: a plain SGD step."""
    case = Case(name, backend, "random", seed=5)
    env, plain = _call(case)
    expected = {g: case.numpy(env[g[1:]]) + ALPHA * case.numpy(v) for g, v in plain.items()}
    into = {g: (env[g[1:]], ALPHA) for g in plain}
    upstream = 1.0 if case.dY is None else case.tensor(case.dY)
    got = case.kernels.backward(upstream, env, **case.scalars, into=into)
    assert all(v is None for v in got.values())
    for g, want in expected.items():
        np.testing.assert_allclose(case.numpy(env[g[1:]]), want, rtol=1e-12, atol=1e-12, err_msg=g)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_product_into_each_memory_order(backend, order, dtype):
    """dW goes into W by BLAS (beta = 1) or the fallback; the value is the same in either memory order."""
    rng = np.random.default_rng(6)
    X, dY = rng.standard_normal((9, 7)).astype(dtype), rng.standard_normal((9, 4)).astype(dtype)
    W = np.asarray(rng.standard_normal((4, 7)), dtype=dtype, order=order)
    case = Case("linear", backend, "random", seed=0)
    t = (lambda a: a) if backend == "numpy" else (lambda a: torch.from_numpy(a))
    plain = case.kernels.k.linear_backward(t(dY), X=t(X), W=t(W))
    target = t(W.copy(order=order))
    case.kernels.k.linear_backward(t(dY), X=t(X), W=t(W), into={"dW": (target, ALPHA)})
    want = W + ALPHA * case.numpy(plain[1])
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(case.numpy(target), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_into_refuses_in_one_line(backend):
    case = Case("linear", backend, "random", seed=0)
    env, plain = _call(case)
    upstream = case.tensor(case.dY)
    with pytest.raises(ValueError, match=r"^into: 'dZ' is not a gradient computed here"):
        case.kernels.backward(upstream, env, into={"dZ": (_copy(env["W"]), 1.0)})
    with pytest.raises(ValueError, match=r"^into: 'dX' is not a gradient computed here .*need_ flag"):
        case.kernels.backward(upstream, env, need_dX=False, into={"dX": (_copy(env["X"]), 1.0)})
    with pytest.raises(ValueError, match=r"^into: dW has shape .*, the array given"):
        case.kernels.backward(upstream, env, into={"dW": (_copy(env["X"]), 1.0)})
