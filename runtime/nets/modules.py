"""The course's modules, each a thin holder of state around the generated kernels.

Interface as in the course: ``params``/``grads`` dicts, ``forward(x)``,
``backward(dout)`` returning dL/dx and filling ``grads``, ``clear_cache()``.
Losses take ``forward(x, y)`` / ``backward(x, y)``, ``y`` integer labels or an
(S, C) array of one-hot or soft targets. No derivative is computed here: each
method calls a kernel from generated/.
"""
from __future__ import annotations

import numpy as np

from runtime.kernels.backend import Backend

NUMPY = Backend("numpy", "cpu", "float64")


INITS = ("kaiming", "torch")


def initial_weights(rng, shape, fan_in, init="kaiming", input_layer=False):
    """(weight, bias) as host arrays for a layer whose output sums ``fan_in`` inputs.

    ``kaiming``: the course's NumPy modules (seeds 000/001): weight N(0, 2/fan_in), N(0, 1/fan_in) for the
    input layer (its inputs are not ReLU outputs), zero bias.
    ``torch``: PyTorch's default for nn.Linear and nn.Conv2d (``reset_parameters``), which the course's
    ConvNet in PyTorch trained from (seed 002, section 4): weight kaiming_uniform_(a=√5), i.e.
    U(−1/√fan_in, 1/√fan_in), variance 1/(3·fan_in); bias U(−1/√fan_in, 1/√fan_in).
    """
    if init == "kaiming":
        std = np.sqrt((1.0 if input_layer else 2.0) / fan_in)
        return rng.normal(0.0, std, shape), np.zeros(shape[0])
    if init == "torch":
        bound = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, shape), rng.uniform(-bound, bound, shape[0])
    raise ValueError(f"unknown init {init!r} ({', '.join(INITS)})")


class Module:
    kernel = ""   # name of the module in generated/
    arguments = {}  # parameter -> the kernel's argument for it ({"weight": "W"}); its gradient is "d" + that

    def __init__(self, backend: Backend | None = None, **scalars):
        self.backend = backend or NUMPY
        self.kernels = self.backend.kernels(self.kernel)
        self.scalars = {**self.kernels.SCALARS, **scalars}
        self.params, self.grads, self.cache = {}, {}, {}
        self.training = True

    def kernel_params(self) -> dict:
        """The parameters by the kernel's argument names, shaped as the kernel takes them (views)."""
        return {k: self.params[p] for p, k in self.arguments.items()}

    def _backward(self, dout, sgd_lr=None, **flags):
        """The kernel's backward: fills ``grads``, or with ``sgd_lr`` updates the parameters in place
        (p -= lr·dp, added by the kernel straight into p; ``grads`` then hold None)."""
        into = None
        if sgd_lr is not None:
            into = {f"d{k}": (v, -sgd_lr) for k, v in self.kernel_params().items()}
        g = self.kernels.backward(dout, self.cache, into=into, **flags, **self.scalars)
        for p, k in self.arguments.items():  # None after a fused step: no stale gradient to misread
            self.grads[p] = None if into is not None else g[f"d{k}"].reshape(self.params[p].shape)
        return g.get("dX")

    def clear_cache(self):
        self.cache = {}

    def train(self):
        self.training = True

    def eval(self):
        self.training = False

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.scalars.items())})"


class LinearModule(Module):
    """Y = X Wᵀ + b; ``weight`` (out, in), ``bias`` (1, out); ``init`` as in ``initial_weights`` (Kaiming, zero
    bias, by default)."""

    kernel = "linear"
    arguments = {"weight": "W", "bias": "b"}

    def __init__(self, in_features, out_features, input_layer=False, backend=None, rng=None, init="kaiming"):
        super().__init__(backend)
        rng = rng or np.random.default_rng()
        w, b = initial_weights(rng, (out_features, in_features), in_features, init, input_layer)
        self.input_layer = input_layer
        # (out, in) stored column-major, i.e. as the (in, out) matrix: X Wᵀ reads it and dW is written
        # in the layout BLAS is fastest at for batch-first X (measured: benchmarks/mlp.py).
        weight = self.backend.column_major(self.backend.asarray(w))
        self.params = {"weight": weight, "bias": self.backend.asarray(b.reshape(1, out_features))}
        self.grads = {k: self.backend.zeros(v.shape) for k, v in self.params.items()}

    def kernel_params(self):
        return {"W": self.params["weight"], "b": self.params["bias"][0]}

    def forward(self, x):
        self.cache = self.kernels.forward({"X": x, **self.kernel_params()})
        return self.cache["Y"]

    def backward(self, dout, sgd_lr=None):
        # The input layer's dX feeds nobody: the kernel skips it.
        return self._backward(dout, sgd_lr, need_dX=not self.input_layer)


class _Elementwise(Module):
    def forward(self, x):
        self.cache = self.kernels.forward({"X": x}, **self.scalars)
        return self.cache["Y"]

    def backward(self, dout, sgd_lr=None):
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
    labels_kernel = ""  # a kernel that takes integer labels as they are (no one-hot rows)

    def targets(self, x, y):
        y = y if not isinstance(y, np.ndarray) else self.backend.asarray(y)
        if self.labels and y.ndim == 1:
            return self.backend.one_hot(y, x.shape[1])
        if tuple(y.shape) != tuple(x.shape):
            raise ValueError(f"targets of shape {tuple(y.shape)} for inputs of shape {tuple(x.shape)}")
        return y

    def _by_label(self, y) -> bool:
        return bool(self.labels_kernel) and getattr(y, "ndim", None) == 1

    def forward(self, x, y):
        if self._by_label(y):
            y = y if not isinstance(y, np.ndarray) else self.backend.asarray(y)
            if not hasattr(self, "label_kernels"):
                self.label_kernels = self.backend.kernels(self.labels_kernel)
            self.cache = self.label_kernels.forward({"X": x, "y": y}, **self.scalars)
        else:
            self.cache = self.kernels.forward({"X": x, "T": self.targets(x, y)}, **self.scalars)
        self._inputs = (x, y)
        return self.cache["L"]

    def backward(self, x, y):
        if getattr(self, "_inputs", (None, None))[0] is not x or self._inputs[1] is not y:
            self.forward(x, y)
        kernels = self.label_kernels if "y" in self.cache else self.kernels
        return kernels.backward(1.0, self.cache, **self.scalars)["dX"]


class CrossEntropyModule(_Loss):
    """On probabilities x."""

    kernel = "cross_entropy"


class SoftmaxCrossEntropyModule(_Loss):
    """Softmax and cross-entropy fused, on logits x; gradient (softmax(x) − T)/S. Integer labels go to the
    kernel that reads them as they are (a gather; no one-hot rows)."""

    kernel = "softmax_cross_entropy"
    labels_kernel = "softmax_cross_entropy_labels"


class MSEModule(_Loss):
    """L = 1/(2S) Σ (x − y)²."""

    kernel = "mse"
    labels = False


class BatchNormModule(Module):
    """Training mode: batch statistics; eval mode: running statistics, updated as PyTorch does.

    ``features`` axis 1 of the input; the statistics run over every other axis.
    """

    kernel = "batch_norm"
    arguments = {"gamma": "gamma", "beta": "beta"}

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
        n, m = int(np.prod(x.shape)) // x.shape[1], self.momentum   # values per feature
        # PyTorch keeps the unbiased variance as the running estimate.
        unbiased = var * (n / (n - 1)) if n > 1 else var
        # In place: the arrays stay where they are (a recorded training step reads and writes them there).
        self.running_mean *= 1 - m
        self.running_mean += m * mean
        self.running_var *= 1 - m
        self.running_var += m * unbiased
        return y

    def backward(self, dout, sgd_lr=None):
        return self._backward(dout, sgd_lr)


class BatchNorm2dModule(BatchNormModule):
    """Per channel over batch, height and width: x (N, C, H, W)."""

    kernel = "batch_norm2d"

    def __init__(self, num_channels, eps=1e-5, momentum=0.1, backend=None):
        super().__init__(num_channels, eps, momentum, backend)


class Conv2dModule(Module):
    """Y = conv2d(X, W) + b, as PyTorch's; ``weight`` (out, in, kh, kw), ``bias`` (out,); ``init`` as in
    ``initial_weights`` (Kaiming with gain √2 on every layer, zero bias, by default; ``input_layer`` only
    skips the input gradient)."""

    kernel = "conv2d"
    arguments = {"weight": "W", "bias": "b"}

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, input_layer=False,
                 backend=None, rng=None, init="kaiming"):
        super().__init__(backend, stride=stride, padding=padding)
        rng = rng or np.random.default_rng()
        kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
        w, b = initial_weights(rng, (out_channels, in_channels, kh, kw), in_channels * kh * kw, init)
        self.input_layer = input_layer
        self.params = {"weight": self.backend.asarray(w), "bias": self.backend.asarray(b)}
        self.grads = {k: self.backend.zeros(v.shape) for k, v in self.params.items()}

    def forward(self, x):
        self.cache = self.kernels.forward({"X": x, "W": self.params["weight"], "b": self.params["bias"]},
                                          **self.scalars)
        return self.cache["Y"]

    def backward(self, dout, sgd_lr=None):
        # The input layer's dX feeds nobody: the kernel skips it.
        return self._backward(dout, sgd_lr, need_dX=not self.input_layer)


class MaxPool2dModule(Module):
    """Max over kernel_size × kernel_size windows; ``stride`` defaults to the window, as in PyTorch."""

    kernel = "max_pool2d"

    def __init__(self, kernel_size, stride=None, padding=0, backend=None):
        if not 0 <= padding <= kernel_size // 2:
            # As PyTorch: a window must hold at least one element of the input.
            raise ValueError(f"MaxPool2dModule: padding {padding} must be between 0 and kernel_size // 2 "
                             f"= {kernel_size // 2}")
        super().__init__(backend, kernel_size=kernel_size, stride=kernel_size if stride is None else stride,
                         padding=padding)

    def forward(self, x):
        self.cache = self.kernels.forward({"X": x}, **self.scalars)
        return self.cache["Y"]

    def backward(self, dout, sgd_lr=None):
        return self.kernels.backward(dout, self.cache, **self.scalars)["dX"]


class FlattenModule:
    """(N, C, H, W) → (N, C·H·W), row-major: a change of shape only, no arithmetic to derive."""

    def __init__(self, backend=None):
        self.backend = backend or NUMPY
        self.params, self.grads, self.shape = {}, {}, None
        self.training = True

    def forward(self, x):
        self.shape = tuple(x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, dout, sgd_lr=None):
        return dout.reshape(self.shape)

    def clear_cache(self):
        self.shape = None

    def train(self):
        self.training = True

    def eval(self):
        self.training = False

    def __repr__(self):
        return "FlattenModule()"
