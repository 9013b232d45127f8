"""Backward kernels' ``into``: gradients added into the caller's arrays (SGD fused into the kernels), both backends.

Every value is compared with the plain call in float64: ``array + alpha * gradient``.
"""
from __future__ import annotations

import importlib

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
    upstream = case.upstream()
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
    upstream = case.upstream()
    got = case.kernels.backward(upstream, env, **case.scalars, into=into)
    assert all(v is None for v in got.values())
    for g, want in expected.items():
        np.testing.assert_allclose(case.numpy(env[g[1:]]), want, rtol=1e-12, atol=1e-12, err_msg=g)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("orders", ["CCC", "CCF", "CFC", "FCC", "FFF", "CFF", "FCF", "FFC"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_product_into_each_memory_order(backend, orders, dtype):
    """dW goes into W by BLAS (beta = 1) or the fallback; the value is the same in every memory order of
    the target, the upstream and the input."""
    rng = np.random.default_rng(6)
    order_w, order_dy, order_x = orders
    X = np.asarray(rng.standard_normal((9, 7)), dtype=dtype, order=order_x)
    dY = np.asarray(rng.standard_normal((9, 4)), dtype=dtype, order=order_dy)
    W = np.asarray(rng.standard_normal((4, 7)), dtype=dtype, order=order_w)
    k = Case("linear", backend, "random", seed=0).kernels.k
    t = (lambda a: a) if backend == "numpy" else (lambda a: torch.from_numpy(a))
    plain = k.linear_backward(t(dY), X=t(X), W=t(W))
    target = t(W.copy(order=order_w))
    k.linear_backward(t(dY), X=t(X), W=t(W), into={"dW": (target, ALPHA)})
    want = W + ALPHA * np.asarray(plain[1])
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(np.asarray(target), want, rtol=tol, atol=tol)


def test_numpy_adds_products_through_its_own_blas():
    """Where NumPy bundles OpenBLAS (its wheels), the kernels find its GEMM: the beta = 1 path is the one taken."""
    import pathlib

    root = pathlib.Path(np.__file__).resolve().parent
    if not [*root.parent.glob("numpy.libs/*openblas64*"), *root.glob(".dylibs/*openblas64*")]:
        pytest.skip("this NumPy bundles no OpenBLAS: the fallback (product, then one add) is used")
    from generated.numpy import _helpers

    assert set(_helpers._cblas()) == {np.dtype("float32"), np.dtype("float64")}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gradient_that_is_a_view_of_a_target_is_taken_before_the_write(backend):
    """dW = X (a view), into dX: X. The dW returned and the one added are X as it was."""
    k = importlib.import_module(f"generated.{backend}._helpers")
    t = (lambda a: a) if backend == "numpy" else (lambda a: torch.from_numpy(a))
    X = t(np.ones((2, 2)))
    buf = t(np.zeros((2, 2)))
    dX, dW, dZ = k._accumulate({"dX": (X, 1.0), "dZ": (buf, 1.0)}, {"dX": t(np.full((2, 2), 5.0)), "dW": X, "dZ": X})
    assert dX is None and dZ is None
    np.testing.assert_array_equal(np.asarray(dW), 1.0)
    np.testing.assert_array_equal(np.asarray(buf), 1.0)
    np.testing.assert_array_equal(np.asarray(X), 6.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_into_refuses_in_one_line(backend):
    case = Case("linear", backend, "random", seed=0)
    env, plain = _call(case)
    upstream = case.upstream()
    with pytest.raises(ValueError, match=r"^into: 'dZ' is not a gradient computed here"):
        case.kernels.backward(upstream, env, into={"dZ": (_copy(env["W"]), 1.0)})
    with pytest.raises(ValueError, match=r"^into: 'dX' is not a gradient computed here \(dW, db; a need_ flag off\?\)$"):
        case.kernels.backward(upstream, env, need_dX=False, into={"dX": (_copy(env["X"]), 1.0)})
    with pytest.raises(ValueError, match=r"^into: dW has shape .*, the array given"):
        case.kernels.backward(upstream, env, into={"dW": (_copy(env["X"]), 1.0)})
    # Every target is checked before any is written: W stays as it was.
    W, bad = _copy(env["W"]), _copy(env["b"])
    if backend == "numpy":
        bad = bad.astype(np.int64)
        message = r"^into: db is float64, the array given int64$"
    else:
        bad = bad.float()
        message = r"^into: db is torch.float64 on cpu, the array given torch.float32 on cpu$"
    with pytest.raises(ValueError, match=message):
        case.kernels.backward(upstream, env, into={"dW": (W, 1.0), "db": (bad, 1.0)})
    np.testing.assert_array_equal(case.numpy(W), case.numpy(env["W"]))
    if backend == "torch":
        leaf = env["W"].clone().requires_grad_()
        with pytest.raises(ValueError, match=r"^into: the array given for dW requires grad: update it under "):
            case.kernels.backward(upstream, env, into={"dW": (leaf, 1.0)})
    if backend == "numpy":
        frozen = env["W"].copy()
        frozen.setflags(write=False)
        with pytest.raises(ValueError, match=r"^into: the array given for dW is read-only$"):
            case.kernels.backward(upstream, env, into={"dW": (frozen, 1.0)})


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernels_built_in_place_keep_the_promoted_dtype(backend):
    """Integers become floats and mixed float32/float64 arguments give float64, as the expression would promote."""
    k = {n: Case(n, backend, "random", seed=0).kernels.k for n in ("elu", "linear")}
    t = (lambda a: a) if backend == "numpy" else (lambda a: torch.from_numpy(a))
    y = k["elu"].elu_forward(t(np.arange(-3, 3).reshape(2, 3)))
    # NumPy promotes integers to float64, Torch to its default float (float32).
    tol = 1e-15 if str(y.dtype).endswith("float64") else 1e-6
    np.testing.assert_allclose(np.asarray(y), [[np.expm1(-3), np.expm1(-2), np.expm1(-1)], [0, 1, 2]], rtol=tol)
    x, w, b = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32), np.full(4, 0.1)
    y = k["linear"].linear_forward(t(x), t(w), t(b))
    assert str(y.dtype).endswith("float64")
    np.testing.assert_allclose(np.asarray(y), 3.1, rtol=1e-15)
