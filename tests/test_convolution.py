"""Convolution, max pooling and image batch norm, float64: the generated kernels against PyTorch's
functions and autograd, central differences, the drop-in layers, and the whole ConvNet against torch.nn."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from runtime.kernels.calling import Kernels
from runtime.nets.convnet import ConvNet
from runtime.training.data import Cifar10, Split
from runtime.nets.modules import BatchNorm2dModule, Conv2dModule, MaxPool2dModule
from runtime.training.optim import Adam
from runtime.nets.torch_convnet import torch_copy
from tests.conftest import BACKENDS

CONV = [(stride, padding, k) for stride in (1, 2) for padding in (0, 1) for k in (1, 3)]
POOL = [(2, 2, 0), (3, 2, 1), (3, 1, 1), (1, 1, 0), (3, 2, 0), (2, 1, 1), (3, 3, 1)]


def close(a, b, tol=1e-10):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    err = np.max(np.abs(a - b), initial=0.0)
    assert err <= tol * (1.0 + np.max(np.abs(b), initial=0.0)), f"max abs error {err:.3e}"


def as_numpy(a):
    return a if isinstance(a, np.ndarray) else a.detach().numpy()


def run(name, backend, arrays, dY, /, **scalars):
    """Forward output and gradients of the generated kernels, called by their metadata."""
    k = Kernels(name, backend)
    wrap = (lambda a: a) if backend == "numpy" else (lambda a: torch.tensor(a))
    env = k.forward({n: wrap(a) for n, a in arrays.items()}, **scalars)
    grads = k.backward(wrap(dY), env, **scalars)
    return as_numpy(env["Y"]), {g: as_numpy(v) for g, v in grads.items()}


def autograd(fn, arrays, dY):
    xs = {n: torch.tensor(a, requires_grad=True) for n, a in arrays.items()}
    y = fn(**xs)
    grads = torch.autograd.grad(y, list(xs.values()), torch.tensor(dY))
    return y.detach().numpy(), {"d" + n: g.numpy() for n, g in zip(xs, grads)}


def odd_sizes(rng):
    return int(rng.choice([5, 7, 9, 11])), int(rng.choice([5, 7, 9, 11]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stride,padding,k", CONV)
def test_conv2d_matches_pytorch_and_autograd(backend, stride, padding, k):
    rng = np.random.default_rng(100 * stride + 10 * padding + k)
    for _ in range(2):
        S, C, O = (int(n) for n in rng.integers(1, 4, 3))
        Hi, Wi = odd_sizes(rng)
        arrays = {"X": rng.standard_normal((S, C, Hi, Wi)), "W": rng.standard_normal((O, C, k, k)),
                  "b": rng.standard_normal(O)}
        ref_y = F.conv2d(*(torch.tensor(a) for a in arrays.values()), stride=stride, padding=padding)
        dY = rng.standard_normal(tuple(ref_y.shape))
        y, grads = run("conv2d", backend, arrays, dY, stride=stride, padding=padding)
        want_y, want = autograd(lambda X, W, b: F.conv2d(X, W, b, stride=stride, padding=padding), arrays, dY)
        close(y, want_y)
        for g in want:
            close(grads[g], want[g])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k,stride,padding", POOL)
def test_max_pool2d_matches_pytorch_and_autograd(backend, k, stride, padding):
    rng = np.random.default_rng(100 * k + 10 * stride + padding)
    for values in ("normal", "ties"):
        S, C = (int(n) for n in rng.integers(1, 4, 2))
        Hi, Wi = odd_sizes(rng)
        X = rng.standard_normal((S, C, Hi, Wi))
        if values == "ties":  # few distinct values (and all negative: padding must never win)
            X = -rng.integers(1, 3, (S, C, Hi, Wi)).astype(np.float64)
        ref_y = F.max_pool2d(torch.tensor(X), k, stride, padding)
        dY = rng.standard_normal(tuple(ref_y.shape))
        y, grads = run("max_pool2d", backend, {"X": X}, dY, kernel_size=k, stride=stride, padding=padding)
        want_y, want = autograd(lambda X: F.max_pool2d(X, k, stride, padding), {"X": X}, dY)
        close(y, want_y, 0)
        close(grads["dX"], want["dX"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_norm2d_matches_pytorch_and_autograd(backend):
    rng = np.random.default_rng(5)
    for _ in range(3):
        S, C = (int(n) for n in rng.integers(1, 4, 2))
        Hi, Wi = odd_sizes(rng)
        arrays = {"X": rng.standard_normal((S, C, Hi, Wi)) * 3 + 1, "gamma": rng.standard_normal(C),
                  "beta": rng.standard_normal(C)}
        dY = rng.standard_normal((S, C, Hi, Wi))
        y, grads = run("batch_norm2d", backend, arrays, dY, eps=1e-5)
        want_y, want = autograd(lambda X, gamma, beta: F.batch_norm(X, None, None, gamma, beta, training=True,
                                                                     eps=1e-5), arrays, dY)
        close(y, want_y)
        for g in want:
            close(grads[g], want[g])


def central_differences(name, arrays, dY, scalars, wrt):
    k = Kernels(name, "numpy")
    h = 1e-6
    numeric = np.zeros_like(arrays[wrt])
    for i in np.ndindex(numeric.shape):
        plus = {n: a.copy() for n, a in arrays.items()}
        minus = {n: a.copy() for n, a in arrays.items()}
        plus[wrt][i] += h
        minus[wrt][i] -= h
        numeric[i] = (np.sum(dY * k.forward(plus, **scalars)["Y"]) - np.sum(dY * k.forward(minus, **scalars)["Y"])) / (2 * h)
    return numeric


@pytest.mark.parametrize("name,scalars", [("conv2d", {"stride": 2, "padding": 1}),
                                          ("max_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1})])
def test_strided_padded_gradients_match_central_differences(name, scalars):
    rng = np.random.default_rng(3)
    arrays = {"X": rng.standard_normal((2, 2, 7, 6))}
    if name == "conv2d":
        arrays.update(W=rng.standard_normal((3, 2, 3, 3)), b=rng.standard_normal(3))
    k = Kernels(name, "numpy")
    env = k.forward(arrays, **scalars)
    dY = rng.standard_normal(env["Y"].shape)
    grads = k.backward(dY, env, **scalars)
    for n in arrays:
        numeric = central_differences(name, arrays, dY, scalars, n)
        err = np.abs(grads["d" + n] - numeric).max()
        assert err <= 1e-7 * (1 + np.abs(numeric).max()), f"d{n}: {err:.2e}"


@pytest.mark.parametrize("name,args,scalars", [
    ("conv2d", lambda rng: (rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((3, 2, 3, 3)),
                            rng.standard_normal(3)), dict(stride=2, padding=1)),
    ("max_pool2d", lambda rng: (rng.standard_normal((2, 2, 5, 6)),), dict(kernel_size=3, stride=2, padding=1)),
    ("batch_norm2d", lambda rng: (rng.standard_normal((3, 2, 4, 3)), rng.standard_normal(2),
                                  rng.standard_normal(2)), dict(eps=1e-5)),
])
def test_drop_in_layers_pass_gradcheck(name, args, scalars):
    from runtime.torch_layers import function

    rng = np.random.default_rng(0)
    values = [torch.tensor(a, requires_grad=True) for a in args(rng)]
    assert torch.autograd.gradcheck(function(name, **scalars).apply, values)


def test_wrong_shapes_get_one_clear_line():
    k = Kernels("conv2d", "numpy")
    X, W, b = np.zeros((1, 2, 5, 5)), np.zeros((3, 2, 3, 3)), np.zeros(3)
    with pytest.raises(ValueError, match=r"conv2d_backward: Ho is 4 in the arrays given, but Ho = .* = 3"):
        k.backward(np.zeros((1, 3, 4, 3)), {"X": X, "W": W}, stride=1, padding=0)
    with pytest.raises(ValueError, match=r"conv2d_forward: Ho = .* = -1 .*; it must be at least 1"):
        k.forward({"X": np.zeros((1, 2, 1, 5)), "W": W, "b": b}, stride=1, padding=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_modules_course_style(backend):
    """Conv2dModule, MaxPool2dModule, BatchNorm2dModule against torch.nn in float64, train and eval."""
    from runtime.kernels.backend import Backend

    b = Backend(backend, "cpu", "float64")
    rng = np.random.default_rng(1)
    conv = Conv2dModule(3, 4, 3, stride=2, padding=1, backend=b, rng=rng)
    tconv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1).double()
    tconv.weight.data = torch.tensor(b.to_numpy(conv.params["weight"]))
    tconv.bias.data = torch.tensor(b.to_numpy(conv.params["bias"]))
    bn, tbn = BatchNorm2dModule(4, backend=b), torch.nn.BatchNorm2d(4).double()
    pool, tpool = MaxPool2dModule(3, stride=2, padding=1, backend=b), torch.nn.MaxPool2d(3, 2, 1)
    for step in range(3):
        x = rng.standard_normal((2, 3, 9, 7))
        xt = torch.tensor(x, requires_grad=True)
        yt = tpool(tbn(tconv(xt)))
        y = pool.forward(bn.forward(conv.forward(b.asarray(x))))
        close(b.to_numpy(y), yt.detach().numpy())
        dy = rng.standard_normal(tuple(yt.shape))
        yt.backward(torch.tensor(dy))
        dx = conv.backward(bn.backward(pool.backward(b.asarray(dy))))
        close(b.to_numpy(dx), xt.grad.numpy())
        close(b.to_numpy(conv.grads["weight"]), tconv.weight.grad.numpy())
        close(b.to_numpy(bn.grads["gamma"]), tbn.weight.grad.numpy())
        for m in (tconv, tbn):
            m.zero_grad()
    close(b.to_numpy(bn.running_mean), tbn.running_mean.numpy())
    close(b.to_numpy(bn.running_var), tbn.running_var.numpy())
    bn.eval(), tbn.eval()
    x = rng.standard_normal((2, 4, 5, 5))
    close(b.to_numpy(bn.forward(b.asarray(x))), tbn(torch.tensor(x)).detach().numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_convnet_first_20_adam_steps_match_torch_nn(backend):
    """The whole small VGG, float64: the same weights, the same batches, 20 Adam steps; losses and weights to 1e-8."""
    net = ConvNet(backend=backend, dtype="float64", seed=0)
    ref = torch_copy(net)
    opt, ref_opt = Adam(net, 1e-4), torch.optim.Adam(ref.parameters(), lr=1e-4)
    rng = np.random.default_rng(2)
    b = net.backend
    for step in range(20):
        x, y = rng.standard_normal((8, 3, 32, 32)), rng.integers(0, 10, 8)
        logits = net.forward(b.asarray(x))
        loss = net.loss.forward(logits, b.asarray(y))
        net.backward(net.loss.backward(logits, b.asarray(y)))
        opt.step()
        ref_loss = F.cross_entropy(ref(torch.tensor(x)), torch.tensor(y))
        ref_opt.zero_grad()
        ref_loss.backward()
        ref_opt.step()
        assert abs(float(b.to_numpy(loss)) - ref_loss.item()) <= 1e-8 * (1 + abs(ref_loss.item())), step
    for (layer, k), p in zip(net.parameters(), ref.parameters()):
        mine = b.to_numpy(layer.params[k]).reshape(tuple(p.shape))
        close(mine, p.detach().numpy(), 1e-8)


def tiny_images(n, seed=0) -> Split:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3072)).astype(np.float32)
    return Split(x, rng.integers(0, 10, n))


def test_train_cnn_writes_metrics_checkpoint_and_curves(tmp_path):
    from runtime.training import checkpoint
    from runtime.train_cnn import CNNConfig, run as train

    data = Cifar10(tiny_images(64), tiny_images(8, 1), tiny_images(40, 2))
    cfg = CNNConfig(batch_size=8, max_steps=5, eval_freq=2, out=str(tmp_path / "run"))
    metrics = train(cfg, data=data, progress=False, log=lambda *a: None)
    assert [e["step"] for e in metrics["evaluations"]] == [2, 4, 5]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics)) and saved["config"]["learning_rate"] == 1e-4
    assert all(0 <= e["test_accuracy"] <= 1 and np.isfinite(e["train_loss"]) for e in saved["evaluations"])
    state, config = checkpoint.load(tmp_path / "run" / "checkpoint.npz")
    assert config["step"] == 5 and "0.weight" in state
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0 and (tmp_path / "run" / "accuracy.png").exists()


@pytest.mark.parametrize("args,message", [
    (["--learning_rate", "0"], "--learning_rate must be a positive number"),
    (["--max_steps", "0"], "must be at least 1"),
    (["--optimizer", "rmsprop"], "invalid choice"),
    (["--backend", "numpy", "--device", "cuda"], "--device cuda needs --backend torch"),
])
def test_train_cnn_rejects_bad_input_in_one_line(args, message, tmp_path):
    r = subprocess.run([sys.executable, "-m", "runtime.train_cnn", *args, "--out", str(tmp_path / "out")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_pools_forward_saves_its_arg_max_for_the_backward():
    """max_pool2d's forward returns the arg-max beside Y (each backend's own positions, listed in INDICES) and
    the backward routes dY through it; the gradient equals the one found by searching the windows again."""
    for backend in BACKENDS:
        k = Kernels("max_pool2d", backend)
        assert k.RETURNS == ("Y", "Y_argmax") and "Y_argmax" in k.SAVED and k.INDICES == ("Y_argmax",)
    rng = np.random.default_rng(3)
    X = np.round(rng.standard_normal((2, 3, 7, 6)) * 2)  # integers: ties, the first in each window wins
    k = Kernels("max_pool2d", "numpy")
    env = k.forward({"X": X}, kernel_size=3, stride=2, padding=1)
    dY = rng.standard_normal(env["Y"].shape)
    saved = k.backward(dY, env, kernel_size=3, stride=2, padding=1)["dX"]
    from generated.numpy import _helpers
    searched = _helpers._max_pool_scatter(X, dY, (2, 2), (1, 1), (-1, -1), (3, 3))
    np.testing.assert_array_equal(saved, searched)


def test_lowering_recognises_the_three_convolutions():
    """conv2d's derived Y, dX and dW lower to a convolution's forward (its bias fused), input gradient (a
    transposed convolution) and weight gradient, for both backends; each backend spells them through its
    helpers (a library convolution in Torch, im2col and one BLAS product in NumPy), which agree."""
    from derive import registry
    from derive.engine import arrays
    from derive.engine.backends import BACKENDS as TABLES
    from derive.engine.derivation import derive
    from derive.engine.kernel import kernels
    from derive.engine.lower import lower_kernel

    forward = registry.load("conv2d")
    fwd, bwd = kernels(derive(forward))[:2]
    for backend in TABLES.values():
        ops = {s.statement.name: s.instructions for k in (fwd, bwd)
               for s in lower_kernel(k, backend.caps).statements}
        (y,), (dx,), (dw,) = ops["Y"], ops["dX"], ops["dW"]
        assert isinstance(y.value, arrays.Correlate) and y.value.bias == arrays.Name("b")
        assert isinstance(dx.value, arrays.CorrelateTransposed) and dx.value.w == arrays.Name("W")
        assert isinstance(dw.value, arrays.CorrelateWeight)
    rng = np.random.default_rng(4)
    X, W, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    for stride, padding in ((1, 1), (2, 0), (3, 2)):
        k_np, k_t = Kernels("conv2d", "numpy"), Kernels("conv2d", "torch")
        env_np = k_np.forward({"X": X, "W": W, "b": b}, stride=stride, padding=padding)
        env_t = k_t.forward({n: torch.tensor(a) for n, a in (("X", X), ("W", W), ("b", b))}, stride=stride,
                            padding=padding)
        close(as_numpy(env_t["Y"]), env_np["Y"], 1e-12)
        dY = rng.standard_normal(env_np["Y"].shape)
        g_np = k_np.backward(dY, env_np, stride=stride, padding=padding)
        g_t = k_t.backward(torch.tensor(dY), env_t, stride=stride, padding=padding)
        for n in g_np:
            close(as_numpy(g_t[n]), g_np[n], 1e-12)
