"""MLP: [Linear → (BatchNorm) → activation] per hidden layer, then Linear; fused softmax–cross-entropy on top."""
from __future__ import annotations

import numpy as np

from runtime.kernels.backend import Backend
from runtime.nets.modules import (BatchNormModule, ELUModule, LinearModule, ReLUModule, SigmoidModule,
                             SoftmaxCrossEntropyModule, TanhModule)
from runtime.nets.network import Network

ACTIVATIONS = {"elu": ELUModule, "relu": ReLUModule, "sigmoid": SigmoidModule, "tanh": TanhModule}


class MLP(Network):
    def __init__(self, n_inputs, n_hidden, n_classes, use_batch_norm=False, activation="elu",
                 backend="numpy", device="cpu", dtype="float32", seed=42):
        self.backend = backend if isinstance(backend, Backend) else Backend(backend, device, dtype)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r} ({', '.join(ACTIVATIONS)})")
        rng = np.random.default_rng(seed)
        self.layers = []
        sizes = [n_inputs, *n_hidden]
        for n, (a, b) in enumerate(zip(sizes, sizes[1:])):
            self.layers.append(LinearModule(a, b, input_layer=n == 0, backend=self.backend, rng=rng))
            if use_batch_norm:
                self.layers.append(BatchNormModule(b, backend=self.backend))
            self.layers.append(ACTIVATIONS[activation](backend=self.backend))
        self.layers.append(LinearModule(sizes[-1], n_classes, input_layer=not n_hidden, backend=self.backend, rng=rng))
        self.loss = SoftmaxCrossEntropyModule(backend=self.backend)
