"""Shared fixtures: every registered module, its generated kernels, and inputs drawn from its declarations."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from derive import registry
from derive.engine.emit import build

BACKENDS = ("numpy", "torch")


@pytest.fixture(scope="session")
def built():
    """name -> emit.Built (forward, derivation, kernels), derived once per session."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = build(registry.load(name))
        return cache[name]

    return get


def kernels_of(name: str, backend: str):
    return importlib.import_module(f"generated.{backend}.{name}")


def sizes_for(forward, rng, batch=None, feature=None) -> dict:
    """A random size for every dimension symbol; ``batch``/``feature`` pin the first two."""
    dims = sorted({d for t in forward.tensors.values() for d in t.dims}, key=str)
    sizes = {d: int(rng.integers(1, 6)) for d in dims}
    first = next((t.dims for t in forward.arguments if len(t.dims) >= 1), ())
    if batch is not None and first:
        sizes[first[0]] = batch
    if feature is not None and len(first) > 1:
        sizes[first[1]] = feature
    return sizes


def draw(forward, sizes, rng, scale=1.0) -> dict:
    """Arrays for every argument (float64): normal values, positive where declared;
    constants are rows of a distribution (targets sum to 1, running variances > 0)."""
    out = {}
    for t in forward.arguments:
        shape = tuple(sizes[d] for d in t.dims)
        if t.role == "const":
            a = rng.uniform(0.1, 1.0, shape)
            out[t.name] = a / a.sum(axis=-1, keepdims=True) if len(shape) > 1 else a
        elif t.positive:
            out[t.name] = rng.uniform(0.1, 1.0, shape)
        else:
            out[t.name] = scale * rng.standard_normal(shape)
    return out
