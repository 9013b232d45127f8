"""MLP: [Linear → (BatchNorm) → activation] per hidden layer, then Linear; fused softmax–cross-entropy on top."""
from __future__ import annotations

import numpy as np

from runtime.backend import Backend
from runtime.modules import (BatchNormModule, ELUModule, LinearModule, ReLUModule, SigmoidModule,
                             SoftmaxCrossEntropyModule, TanhModule)

ACTIVATIONS = {"elu": ELUModule, "relu": ReLUModule, "sigmoid": SigmoidModule, "tanh": TanhModule}


class MLP:
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

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def clear_cache(self):
        for layer in self.layers:
            layer.clear_cache()

    def train(self):
        for layer in self.layers:
            layer.train()

    def eval(self):
        for layer in self.layers:
            layer.eval()

    def sgd_step(self, lr: float):
        """Plain SGD, in place."""
        for layer in self.layers:
            for k, p in layer.params.items():
                p -= lr * layer.grads[k]

    # -- state -----------------------------------------------------------------
    def state_dict(self) -> dict:
        """Host copies of every parameter and running statistic, by ``<layer>.<name>``."""
        out = {}
        for n, layer in enumerate(self.layers):
            for k, p in layer.params.items():
                out[f"{n}.{k}"] = self.backend.to_numpy(p).copy()
            if isinstance(layer, BatchNormModule):
                out[f"{n}.running_mean"] = self.backend.to_numpy(layer.running_mean).copy()
                out[f"{n}.running_var"] = self.backend.to_numpy(layer.running_var).copy()
        return out

    def load_state_dict(self, state: dict):
        expected = set(self.state_dict())
        if set(state) != expected:
            raise ValueError(f"checkpoint does not fit this model: {sorted(set(state) ^ expected)[:4]} ...")
        for key, value in state.items():
            n, name = key.split(".", 1)
            layer = self.layers[int(n)]
            arr = self.backend.asarray(value)
            if name in layer.params:
                if tuple(layer.params[name].shape) != tuple(value.shape):
                    raise ValueError(f"checkpoint {key} has shape {value.shape}, model {tuple(layer.params[name].shape)}")
                layer.params[name] = arr
            else:
                setattr(layer, name, arr)
