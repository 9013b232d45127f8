"""Generated kernels, both backends, float64: against torch.autograd and central differences."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from derive import registry
from runtime.kernels.calling import Kernels
from tests.conftest import BACKENDS, as_tensor, draw, kernels_of, sizes_for

# PyTorch's own forwards for the built-in modules: autograd through these is the reference.
# (A module a user adds has none; it is checked through its generated Torch forward.)
REFERENCE = {
    "linear": lambda X, W, b: F.linear(X, W, b),
    "relu": lambda X: F.relu(X),
    "elu": lambda X, alpha: F.elu(X, alpha),
    "sigmoid": lambda X: torch.sigmoid(X),
    "tanh": lambda X: torch.tanh(X),
    "softmax": lambda X: torch.softmax(X, dim=1),
    "cross_entropy": lambda X, T: -(T * torch.log(X)).sum() / X.shape[0],
    "softmax_cross_entropy": lambda X, T: F.cross_entropy(X, T),
    "softmax_cross_entropy_labels": lambda X, y: F.cross_entropy(X, y),
    "mse": lambda X, T: 0.5 * ((X - T) ** 2).sum() / X.shape[0],
    "batch_norm": lambda X, gamma, beta, eps: F.batch_norm(X, None, None, gamma, beta, training=True, eps=eps),
    "leaky_relu": lambda X, negative_slope: F.leaky_relu(X, negative_slope),
    "softplus": lambda X: F.softplus(X),
    "silu": lambda X: F.silu(X),
    "layer_norm": lambda X, gamma, beta, eps: F.layer_norm(X, X.shape[1:], gamma, beta, eps),
    "conv2d": lambda X, W, b, stride, padding: F.conv2d(X, W, b, stride, padding),
    "max_pool2d": lambda X, kernel_size, stride, padding: F.max_pool2d(X, kernel_size, stride, padding),
    "batch_norm2d": lambda X, gamma, beta, eps: F.batch_norm(X, None, None, gamma, beta, training=True, eps=eps),
    "lstm_cell": lambda X, h0, c0, W_ih, W_hh, b_ih, b_hh: torch.lstm_cell(X, (h0, c0), W_ih, W_hh, b_ih, b_hh),
    "gru_cell": lambda X, h0, W_ih, W_hh, b_ih, b_hh: torch.gru_cell(X, h0, W_ih, W_hh, b_ih, b_hh),
}
SHAPES = ("random", "batch1", "feature1")
TOL = 1e-10


def as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


class Case:
    """One module, one backend, one draw of shapes and values."""

    def __init__(self, name, backend, shape, seed, scale=1.0):
        self.name, self.backend = name, backend
        self.forward = registry.load(name)
        rng = np.random.default_rng(seed)
        batch = {"batch1": 1}.get(shape)
        feature = {"feature1": 1}.get(shape)
        self.sizes = sizes_for(self.forward, rng, batch, feature)
        self.arrays = draw(self.forward, self.sizes, rng, scale)
        self.scalars = {s.name: s.default for s in self.forward.scalars.values()}
        self.out = self.forward.out
        self.outputs = [o.tensor.name for o in self.forward.outputs]
        # One upstream per output (none for a loss: dL = 1), by output name.
        self.dY = None if self.forward.scalar_output else {
            o.tensor.name: rng.standard_normal(tuple(self.sizes[d] for d in o.tensor.dims))
            for o in self.forward.outputs}
        self.mod = kernels_of(name, backend)
        self.kernels = Kernels(name, backend)
        self.wrt = [t.name for t in self.forward.differentiable]

    def upstream(self):
        """What Kernels.backward takes: dL = 1 for a loss, dY for one output, a dict by UPSTREAMS for several."""
        if self.dY is None:
            return 1.0
        if len(self.dY) == 1:
            return self.tensor(self.dY[self.out.tensor.name])
        return {f"d{n}": self.tensor(a) for n, a in self.dY.items()}

    def tensor(self, a):
        return a if self.backend == "numpy" else as_tensor(a)

    def numpy(self, a):
        return a if isinstance(a, np.ndarray) or np.isscalar(a) else a.detach().numpy()

    def run(self):
        """(forward outputs by name, gradients by name) from the generated kernels, called by their metadata."""
        args = {n: self.tensor(a) for n, a in self.arrays.items()}
        assert self.mod.OUTPUTS[0] == self.out.tensor.name == self.mod.RETURNS[0]
        env = self.kernels.forward(args, **self.scalars)
        grads = self.kernels.backward(self.upstream(), env, **self.scalars)
        assert list(grads) == ["d" + n for n in self.wrt]
        outs = {n: env[n] for n in self.mod.RETURNS}
        return ({k: self.numpy(v) for k, v in outs.items()}, {k: self.numpy(v) for k, v in grads.items()})

    def autograd(self, forward_fn):
        """Reference outputs (by name) and gradients by torch.autograd through ``forward_fn`` (the arguments by
        name; it returns the outputs, one or a tuple in OUTPUTS' order)."""
        xs = {n: as_tensor(a, requires_grad=n in self.wrt) for n, a in self.arrays.items()}
        ys = as_tuple(forward_fn(**xs, **self.scalars))
        if self.dY is None:
            grads = torch.autograd.grad(ys, [xs[n] for n in self.wrt])
        else:
            grads = torch.autograd.grad(ys, [xs[n] for n in self.wrt],
                                        [torch.tensor(self.dY[n]) for n in self.outputs])
        return ({n: y.detach().numpy() for n, y in zip(self.outputs, ys)},
                {"d" + n: g.numpy() for n, g in zip(self.wrt, grads)})


def close(a, b, tol=TOL):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    err = np.max(np.abs(a - b), initial=0.0)
    assert err <= tol * (1.0 + np.max(np.abs(b), initial=0.0)), f"max abs error {err:.3e}"


MODULES = registry.MODULES


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", MODULES)
def test_backward_matches_autograd_of_generated_forward(name, backend, shape):
    torch_kernels = Kernels(name, "torch")
    for seed in range(3):
        case = Case(name, backend, shape, seed)
        outs, grads = case.run()
        ys, ref = case.autograd(lambda **kw: tuple(torch_kernels.forward(kw, **case.scalars)[n]
                                                   for n in case.mod.OUTPUTS))
        for n, y in ys.items():
            close(outs[n], y)
        for g in ref:
            assert grads[g].shape == case.arrays[g[1:]].shape, f"{g} must have the shape of {g[1:]}"
            close(grads[g], ref[g])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_matches_pytorch_reference(name, backend, shape):
    for seed in range(3):
        case = Case(name, backend, shape, seed)
        if name.startswith("batch_norm") and case.arrays["X"].size == case.arrays["X"].shape[1]:
            continue  # PyTorch's batch norm refuses one value per feature in training mode
        outs, grads = case.run()
        ys, ref = case.autograd(REFERENCE[name])
        for n, y in ys.items():
            close(outs[n], y)
        for g in ref:
            close(grads[g], ref[g])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", MODULES)
def test_backward_matches_central_differences(name, shape):
    """Course style: h = 1e-5 central differences, relative error ≤ 1e-6 on every element."""
    h = 1e-5
    case = Case(name, "numpy", shape, seed=7)
    _, grads = case.run()

    def objective(arrays):
        env = case.kernels.forward(arrays, **case.scalars)
        if case.dY is None:
            return float(np.sum(env[case.mod.OUTPUTS[0]]))
        return float(sum(np.sum(case.dY[n] * env[n]) for n in case.mod.OUTPUTS))

    for n in case.wrt:
        numeric = np.zeros_like(case.arrays[n])
        for i in np.ndindex(numeric.shape):
            plus = {k: v.copy() for k, v in case.arrays.items()}
            minus = {k: v.copy() for k, v in case.arrays.items()}
            plus[n][i] += h
            minus[n][i] -= h
            numeric[i] = (objective(plus) - objective(minus)) / (2 * h)
        analytic = grads["d" + n]
        rel = np.abs(analytic - numeric) / np.maximum(1e-8, np.abs(analytic) + np.abs(numeric))
        assert rel.max() <= 1e-6, f"d{n}: relative error {rel.max():.2e}"


@pytest.mark.parametrize("name", MODULES)
def test_backends_agree(name):
    a = Case(name, "numpy", "random", seed=11)
    b = Case(name, "torch", "random", seed=11)
    (oa, ga), (ob, gb) = a.run(), b.run()
    for k in oa:
        if k not in a.mod.INDICES:  # positions (a pool's arg-max): each backend's own representation
            close(oa[k], ob[k], 1e-12)
    for k in ga:
        close(ga[k], gb[k], 1e-12)


def test_eval_mode_batch_norm_matches_pytorch():
    rng = np.random.default_rng(0)
    X, g, b = rng.standard_normal((7, 4)), rng.standard_normal(4), rng.standard_normal(4)
    rm, rv = rng.standard_normal(4), rng.uniform(0.5, 2.0, 4)
    for backend in BACKENDS:
        mod = kernels_of("batch_norm", backend)
        t = (lambda a: a) if backend == "numpy" else torch.tensor
        y = mod.batch_norm_eval_forward(t(X), t(g), t(b), t(rm), t(rv), eps=1e-5)
        ref = F.batch_norm(*(torch.tensor(a) for a in (X, rm, rv, g, b)), training=False, eps=1e-5)
        close(np.asarray(y), ref.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", [n for n in MODULES if len(registry.load(n).outputs) > 1])
def test_an_omitted_upstream_is_zero(name, backend):
    """Several outputs: each upstream may be left out (None), and counts as zeros of its output's shape."""
    case = Case(name, backend, "random", seed=5)
    env = case.kernels.forward({n: case.tensor(a) for n, a in case.arrays.items()}, **case.scalars)
    for kept in case.outputs:
        given = {f"d{kept}": case.tensor(case.dY[kept])}
        zeros = {f"d{n}": case.tensor(np.zeros_like(case.dY[n])) for n in case.outputs if n != kept}
        alone = case.kernels.backward(given, env, **case.scalars)
        padded = case.kernels.backward({**given, **zeros}, env, **case.scalars)
        for g in alone:
            close(case.numpy(alone[g]), case.numpy(padded[g]), 0)


def test_skipping_the_input_gradient_skips_only_it():
    case = Case("linear", "numpy", "random", seed=3)
    mod = case.mod
    Y = mod.linear_forward(case.arrays["X"], case.arrays["W"], case.arrays["b"])
    dY = np.ones_like(Y)
    assert mod.OPTIONAL == {"dX": "need_dX"}
    full = mod.linear_backward(dY, X=case.arrays["X"], W=case.arrays["W"])
    part = mod.linear_backward(dY, X=case.arrays["X"], W=case.arrays["W"], need_dX=False)
    assert part[0] is None
    close(part[1], full[1], 0)
    close(part[2], full[2], 0)
