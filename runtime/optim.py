"""Optimisers: update rules on the gradients the generated kernels computed (no derivatives here).

Both update each parameter array in place, so the modules keep reading the
same arrays; both work on NumPy and Torch arrays alike.
"""
from __future__ import annotations

import math


class SGD:
    def __init__(self, network, lr: float):
        self.network, self.lr = network, lr

    def step(self):
        for layer, k in self.network.parameters():
            layer.params[k] -= self.lr * layer.grads[k]


class Adam:
    """Adam (Kingma and Ba), in the order PyTorch's ``torch.optim.Adam`` computes it, so the two agree in float64."""

    def __init__(self, network, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.network, self.lr, self.betas, self.eps = network, lr, betas, eps
        b = network.backend
        self.m = {(id(layer), k): b.zeros(layer.params[k].shape) for layer, k in network.parameters()}
        self.v = {(id(layer), k): b.zeros(layer.params[k].shape) for layer, k in network.parameters()}
        self.t = 0

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for layer, k in self.network.parameters():
            g, m, v = layer.grads[k], self.m[id(layer), k], self.v[id(layer), k]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            denom = (v ** 0.5) / math.sqrt(c2) + self.eps
            layer.params[k] -= (self.lr / c1) * (m / denom)


OPTIMIZERS = {"adam": Adam, "sgd": SGD}
