"""The course's modules, each a thin holder of state around the generated kernels.

Interface as in the course: ``params``/``grads`` dicts, ``forward(x)``,
``backward(dout)`` returning dL/dx and filling ``grads``, ``clear_cache()``.
Losses take ``forward(x, y)`` / ``backward(x, y)``, ``y`` integer labels or an
(S, C) array of one-hot or soft targets. No derivative is computed here: each
method calls a kernel from generated/.
"""
from __future__ import annotations

import numpy as np

from runtime.backend import Backend

NUMPY = Backend("numpy", "cpu", "float64")


class Module:
    kernel = ""   # name of the module in generated/

    def __init__(self, backend: Backend | None = None, **scalars):
        self.backend = backend or NUMPY
        self.kernels = self.backend.kernels(self.kernel)
        self.scalars = {**self.kernels.SCALARS, **scalars}
        self.params, self.grads, self.cache = {}, {}, {}
        self.training = True

    def clear_cache(self):
        self.cache = {}

    def train(self):
        self.training = True

    def eval(self):
        self.training = False

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.scalars.items())})"


class LinearModule(Module):
    """Y = X Wᵀ + b; ``weight`` (out, in), ``bias`` (1, out); Kaiming init, zero bias."""

    kernel = "linear"

    def __init__(self, in_features, out_features, input_layer=False, backend=None, rng=None):
        super().__init__(backend)
        rng = rng or np.random.default_rng()
        std = np.sqrt((1.0 if input_layer else 2.0) / in_features)
        self.input_layer = input_layer
        self.params = {"weight": self.backend.asarray(rng.normal(0.0, std, (out_features, in_features))),
                       "bias": self.backend.zeros((1, out_features))}
        self.grads = {k: self.backend.zeros(v.shape) for k, v in self.params.items()}

    def forward(self, x):
        self.cache = self.kernels.forward({"X": x, "W": self.params["weight"], "b": self.params["bias"].reshape(-1)})
        return self.cache["Y"]

    def backward(self, dout):
        # The input layer's dX feeds nobody: the kernel skips it.
        g = self.kernels.backward(dout, self.cache, need_dX=not self.input_layer)
        self.grads["weight"], self.grads["bias"] = g["dW"], g["db"].reshape(1, -1)
        return g["dX"]


class _Elementwise(Module):
    def forward(self, x):
        self.cache = self.kernels.forward({"X": x}, **self.scalars)
        return self.cache["Y"]

    def backward(self, dout):
        return self.kernels.backward(dout, self.cache, **self.scalars)["dX"]


class ReLUModule(_Elementwise):
    kernel = "relu"


class ELUModule(_Elementwise):
    kernel = "elu"

    def __init__(self, alpha=1.0, backend=None):
        super().__init__(backend, alpha=alpha)


class SigmoidModule(_Elementwise):
    kernel = "sigmoid"


class TanhModule(_Elementwise):
    kernel = "tanh"


class SoftMaxModule(_Elementwise):
    kernel = "softmax"


class _Loss(Module):
    """Mean over the batch. ``backward(x, y)`` reuses what ``forward`` saved when called on the same arrays."""

    labels = True  # y may be integer labels, turned into one-hot rows

    def targets(self, x, y):
        y = y if not isinstance(y, np.ndarray) else self.backend.asarray(y)
        if self.labels and y.ndim == 1:
            return self.backend.one_hot(y, x.shape[1])
        if tuple(y.shape) != tuple(x.shape):
            raise ValueError(f"targets of shape {tuple(y.shape)} for inputs of shape {tuple(x.shape)}")
        return y

    def forward(self, x, y):
        t = self.targets(x, y)
        self.cache = self.kernels.forward({"X": x, "T": t}, **self.scalars)
        self._inputs = (x, y)
        return self.cache["L"]

    def backward(self, x, y):
        if getattr(self, "_inputs", (None, None))[0] is not x or self._inputs[1] is not y:
            self.forward(x, y)
        return self.kernels.backward(1.0, self.cache, **self.scalars)["dX"]


class CrossEntropyModule(_Loss):
    """On probabilities x."""

    kernel = "cross_entropy"


class SoftmaxCrossEntropyModule(_Loss):
    """Softmax and cross-entropy fused, on logits x; gradient (softmax(x) − T)/S."""

    kernel = "softmax_cross_entropy"


class MSEModule(_Loss):
    """L = 1/(2S) Σ (x − y)²."""

    kernel = "mse"
    labels = False


class BatchNormModule(Module):
    """Training mode: batch statistics; eval mode: running statistics, updated as PyTorch does."""

    kernel = "batch_norm"

    def __init__(self, n_features, eps=1e-5, momentum=0.1, backend=None):
        super().__init__(backend, eps=eps)
        self.momentum = momentum
        self.params = {"gamma": self.backend.ones((n_features,)), "beta": self.backend.zeros((n_features,))}
        self.grads = {k: self.backend.zeros(v.shape) for k, v in self.params.items()}
        self.running_mean = self.backend.zeros((n_features,))
        self.running_var = self.backend.ones((n_features,))

    def forward(self, x):
        g, b = self.params["gamma"], self.params["beta"]
        if not self.training:
            return self.kernels.variant("eval", {"X": x, "gamma": g, "beta": b, "running_mean": self.running_mean,
                                                 "running_var": self.running_var}, **self.scalars)
        self.cache = env = self.kernels.forward({"X": x, "gamma": g, "beta": b}, **self.scalars)
        y, mean, var = env["Y"], env["mean"], env["var"]
        n, m = x.shape[0], self.momentum
        # PyTorch keeps the unbiased variance as the running estimate.
        unbiased = var * (n / (n - 1)) if n > 1 else var
        self.running_mean = (1 - m) * self.running_mean + m * mean
        self.running_var = (1 - m) * self.running_var + m * unbiased
        return y

    def backward(self, dout):
        g = self.kernels.backward(dout, self.cache, **self.scalars)
        self.grads["gamma"], self.grads["beta"] = g["dgamma"], g["dbeta"]
        return g["dX"]
