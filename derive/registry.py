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
    "softmax_cross_entropy_labels",
    "mse",
    "batch_norm",
    "leaky_relu",
    "softplus",
    "silu",
    "layer_norm",
    "conv2d",
    "max_pool2d",
    "batch_norm2d",
    "lstm_cell",
    "gru_cell",
)

# The modules whose second order is derived too (the kernel <name>_hvp: Hessian-vector products, double backward).
SECOND_ORDER = MODULES


def load(name: str):
    """The ``Forward`` of a registered module."""
    module = importlib.import_module(f"derive.{name}")
    forward = module.forward
    forward.source = f"derive/{name}.py"
    forward.order = 2 if name in SECOND_ORDER else 1
    return forward


class LoadError(ValueError):
    """A module file that cannot be loaded; the message is one line."""


def load_path(path: Path):
    """The ``Forward`` named ``forward`` in a module file anywhere on disk."""
    from derive.engine.notation import Forward

    path = Path(path)
    if not path.is_file():
        raise LoadError(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location(f"derive_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's file: report, don't trace back
        where = f" (line {e.lineno})" if isinstance(e, SyntaxError) else ""
        raise LoadError(f"{path}{where}: {type(e).__name__}: {e}") from None
    forward = getattr(module, "forward", None)
    if not isinstance(forward, Forward):
        raise LoadError(f"{path}: defines no `forward = Forward(...)`")
    forward.source = path.name
    return forward


def build_everything(build_all=None) -> tuple:
    """(modules, examples): every registered module and the course's examples, built."""
    from derive import examples
    from derive.engine.emit import build

    build_all = build_all or (lambda forwards: [build(f) for f in forwards])
    return build_all([load(n) for n in MODULES]), build_all(examples.forwards())


def render_everything(built=None) -> dict:
    """Every generated file: the registered modules, and the course's examples under examples/."""
    from derive import examples
    from derive.engine.emit import render_all

    modules, worked = built or build_everything()
    files = render_all(modules)
    ex = render_all(worked, "derive/examples.py", title=examples.TITLE)
    return {**files, **{f"examples/{rel}": text for rel, text in ex.items()}}
