"""The MLP a careful student writes by hand in NumPy: the peer ``make bench`` measures the generated runtime against.

Matrix products, an ``np.where`` ELU, softmax–cross-entropy on integer labels
(no one-hot matrix), optional batch norm, in-place SGD; no framework. It lives
outside ``runtime/`` on purpose: its backward formulas are typed by hand, which
the toolkit never does, and nothing trains with it but the benchmark.
"""
from __future__ import annotations

import numpy as np


class HandwrittenMLP:
    def __init__(self, sizes, use_batch_norm=False, seed=42, dtype=np.float32, eps=1e-5):
        rng = np.random.default_rng(seed)
        self.W = [(rng.standard_normal((a, b)) * np.sqrt((1.0 if i == 0 else 2.0) / a)).astype(dtype)
                  for i, (a, b) in enumerate(zip(sizes, sizes[1:]))]
        self.b = [np.zeros(b, dtype) for b in sizes[1:]]
        hidden = sizes[1:-1] if use_batch_norm else []
        self.gamma, self.beta = [np.ones(n, dtype) for n in hidden], [np.zeros(n, dtype) for n in hidden]
        self.bn, self.eps = use_batch_norm, eps

    def train_step(self, x, y, lr):
        """One SGD step on a batch; returns the mean cross-entropy."""
        n, last = len(y), len(self.W) - 1
        acts, cache = [x], []
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = acts[-1] @ W + b
            if i == last:
                break
            if self.bn:
                mu, var = z.mean(0), z.var(0)
                inv = 1.0 / np.sqrt(var + self.eps)
                zhat = (z - mu) * inv
                cache.append((zhat, inv))
                z = self.gamma[i] * zhat + self.beta[i]
            else:
                cache.append(z)
            acts.append(np.where(z > 0, z, np.expm1(np.minimum(z, 0))))
        # softmax–cross-entropy on the labels
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        rows = np.arange(n)
        loss = -np.log(p[rows, y]).mean()
        d = p
        d[rows, y] -= 1
        d /= n
        for i in range(last, -1, -1):
            dW, db = acts[i].T @ d, d.sum(0)
            if i > 0:
                d = d @ self.W[i].T
                if self.bn:
                    zhat, inv = cache[i - 1]
                    bn_out = self.gamma[i - 1] * zhat + self.beta[i - 1]
                    d = d * np.where(bn_out > 0, 1, np.exp(np.minimum(bn_out, 0)))
                    dgamma, dbeta = (d * zhat).sum(0), d.sum(0)
                    d = (self.gamma[i - 1] * inv / n) * (n * d - dbeta - zhat * dgamma)
                    self.gamma[i - 1] -= lr * dgamma
                    self.beta[i - 1] -= lr * dbeta
                else:
                    zi = cache[i - 1]
                    d = d * np.where(zi > 0, 1, np.exp(np.minimum(zi, 0)))
            self.W[i] -= lr * dW
            self.b[i] -= lr * db
        return loss
