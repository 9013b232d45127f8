"""Calling generated kernels by the names their module declares (no signature inspection).

Every generated module states its calling convention as data::

    ARGUMENTS  the forward's arrays, in order       RETURNS    what the forward returns (OUTPUTS first)
    UPSTREAMS  the backward's first arguments       SAVED      what the backward reads, by keyword
    GRADIENTS  what the backward returns            OPTIONAL   gradient -> flag that skips it
    SCALARS    hyper-parameters and defaults        VARIANTS   further forwards and their arguments
    LABELS     arguments that are integer arrays (class labels, token ids), passed as integers

``Kernels`` reads those and nothing else.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path


def load_file(path) -> object:
    """A kernel file by its path (``my_kernels/numpy/rms_norm.py``), imported as part of its folder's package,
    so that its ``from ._helpers import ...`` finds the helpers ``python -m derive`` wrote beside it."""
    path = Path(path).resolve()
    folder = path.parent
    package = f"_derived_{hashlib.sha1(str(folder).encode()).hexdigest()[:12]}"
    if package not in sys.modules:
        spec = importlib.util.spec_from_file_location(package, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[package]
            raise
    return importlib.import_module(f"{package}.{path.stem}")


def modules_in(folder, backend: str) -> list[str]:
    """The modules whose kernels ``folder/backend`` holds: its kernel files (a folder derived before the
    package lists were merged names only its last ``python -m derive`` call's in ``__init__.py``)."""
    return sorted(p.stem for p in (Path(folder) / backend).glob("*.py") if not p.stem.startswith("_"))


def find(module: str, backend: str = "numpy", folder=None) -> "Kernels":
    """The kernels of ``module`` in ``folder`` (a folder ``python -m derive FILE.py --out DIR`` wrote), or of the
    built-in modules in generated/ when ``folder`` is None. A folder that is not a derive output, or a module it
    does not hold, is a ValueError in one line naming what the folder holds."""
    if folder is None:
        builtin = Path(importlib.import_module("generated").__path__[0])
        if module not in modules_in(builtin, backend):
            raise ValueError(f"no built-in module {module!r} (the built-ins: {', '.join(modules_in(builtin, backend))}); "
                             f"for your own, pass kernels=DIR, the folder `python -m derive FILE.py --out DIR` wrote")
        return Kernels(module, backend)
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"kernels={str(folder)!r}: no such folder")
    if not (folder / backend / "_helpers.py").is_file():
        raise ValueError(f"kernels={str(folder)!r} is not a folder `python -m derive FILE.py --out DIR` wrote "
                         f"(it has no {backend}/_helpers.py)")
    held = modules_in(folder, backend)
    if module not in held:
        raise ValueError(f"no module {module!r} in {str(folder)!r}: it holds "
                         f"{', '.join(held) if held else 'no ' + backend + ' kernels'}")
    return Kernels(module, backend, loaded=load_file(folder / backend / f"{module}.py"))


class Kernels:
    """The kernels of ``module`` in ``package.backend``, or of an already loaded kernel file ``loaded``."""

    def __init__(self, module: str, backend: str = "numpy", package: str = "generated", loaded=None):
        self.name = module
        self.k = loaded if loaded is not None else importlib.import_module(f"{package}.{backend}.{module}")
        self._forward = getattr(self.k, f"{module}_forward")
        self._backward = getattr(self.k, f"{module}_backward")

    def __getattr__(self, item):
        if item.isupper():  # ARGUMENTS, SAVED, ...
            return getattr(self.k, item)
        raise AttributeError(item)

    def forward(self, arrays: dict, /, **scalars) -> dict:
        """The arguments and everything the forward returns, by name."""
        outs = self._forward(*[arrays[n] for n in self.k.ARGUMENTS], **scalars)
        outs = outs if len(self.k.RETURNS) > 1 else (outs,)
        return {**arrays, **dict(zip(self.k.RETURNS, outs))}

    def backward(self, upstream, env: dict, /, **scalars_and_flags) -> dict:
        """Gradients by name; ``env`` holds at least what the module SAVED. ``upstream``: the one upstream
        gradient, or with several outputs a dict by UPSTREAMS name (one left out is zero)."""
        names = self.k.UPSTREAMS
        if len(names) > 1:
            unknown = set(upstream) - set(names)
            if unknown:
                raise ValueError(f"{self.name}: no upstream {sorted(unknown)[0]!r} (its upstreams: {', '.join(names)})")
            first = tuple(upstream.get(n) for n in names)
        else:
            first = (upstream,) if names else ()
        grads = self._backward(*first, **{n: env[n] for n in self.k.SAVED}, **scalars_and_flags)
        grads = grads if len(self.k.GRADIENTS) > 1 else (grads,)
        return dict(zip(self.k.GRADIENTS, grads))

    def variant(self, name: str, arrays: dict, /, **scalars):
        fn = getattr(self.k, f"{self.name}_{name}_forward")
        return fn(*[arrays[n] for n in self.k.VARIANTS[name]], **scalars)
