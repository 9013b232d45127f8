"""Small learnable stand-ins for CIFAR-10 (no files, no download), shared by the training tests."""
from __future__ import annotations

import numpy as np

from runtime.training.data import Cifar10, Split


def synthetic(n_train=1600, seed=0, n_eval=256) -> Cifar10:
    """Random images whose labels depend on them linearly: learnable."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3072, 10))

    def split(n):
        x = rng.standard_normal((n, 3072)).astype(np.float32)
        return Split(x, (x @ w).argmax(1))
    return Cifar10(split(n_train), split(n_eval), split(n_eval))


def random_images(seed=0, n_train=48, n_validation=8, n_test=16) -> Cifar10:
    """Random images and labels (nothing to learn): enough for a few ConvNet steps and their bookkeeping."""
    rng = np.random.default_rng(seed)

    def split(n):
        return Split(rng.standard_normal((n, 3072)).astype(np.float32), rng.integers(0, 10, n))
    return Cifar10(split(n_train), split(n_validation), split(n_test))
