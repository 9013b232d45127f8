"""The modules ``make derive`` derives, in the order the derivations document lists them.

Add a module by writing ``derive/<name>.py`` (its forward alone) and listing
``<name>`` here; its kernels, derivation and tests follow.
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

MODULES = (
    "linear",
    "relu",
    "elu",
    "sigmoid",
    "tanh",
    "softmax",
    "cross_entropy",
    "softmax_cross_entropy",
    "mse",
    "batch_norm",
    "leaky_relu",
    "softplus",
    "silu",
    "layer_norm",
)


def load(name: str):
    """The ``Forward`` of a registered module."""
    module = importlib.import_module(f"derive.{name}")
    forward = module.forward
    forward.source = f"derive/{name}.py"
    return forward
