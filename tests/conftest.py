"""Shared fixtures: every registered module, its generated kernels, and inputs drawn from its declarations."""
from __future__ import annotations

import importlib

import numpy as np
import sympy as sp
import pytest

from derive import registry
from derive.engine import extents
from derive.engine.emit import build

BACKENDS = ("numpy", "torch")


@pytest.fixture(scope="session")
def built():
    """name -> emit.Built (forward, derivation, kernels), derived once per session."""
    cache = {}

    def get(name):
        if name not in cache:
            forward = registry.load(name)
            forward.order = 1   # first order alone: the second (registry.SECOND_ORDER) has tests of its own
            cache[name] = build(forward)
        return cache[name]

    return get


def as_tensor(a, **kwargs):
    """A test array as a torch tensor: float64, but an index array (labels, token ids) stays integers."""
    import torch
    if np.asarray(a).dtype.kind in "iu":
        return torch.tensor(a)
    return torch.tensor(a, dtype=torch.float64, **kwargs)


def kernels_of(name: str, backend: str):
    return importlib.import_module(f"generated.{backend}.{name}")


def sizes_for(forward, rng, batch=None, feature=None, scalars=None) -> dict:
    """A random size for every dimension symbol; ``batch``/``feature`` pin the first two.

    Extents the engine derives (a convolution's Ho) are computed from the others
    with ``scalars`` (default: the module's defaults); sizes are redrawn until each is at least 1.
    """
    from derive.engine import extents

    derived = extents.solve(forward)
    dims = extents.free_dimensions(forward)
    values = {s.symbol: s.default for s in forward.scalars.values()}
    values.update({forward.scalars[k].symbol: v for k, v in (scalars or {}).items()})
    first = next((t.dims for t in forward.arguments if len(t.dims) >= 1), ())
    # Axes sized by an expression (2*P, D − 1) must be at least 1 too.
    axes = extents.expression_axes(forward)
    for _ in range(1000):
        sizes = {d: int(rng.integers(1, 6)) for d in dims}
        if batch is not None and first and first[0] in sizes:
            sizes[first[0]] = batch
        if feature is not None and len(first) > 1 and first[1] in sizes:
            sizes[first[1]] = feature
        found = {d: int(f.subs({**sizes, **values})) for d, f in derived.items()}
        axis_sizes = [int(sp.sympify(d).subs({**sizes, **values, **found})) for d in axes]
        if all(n >= 1 for n in [*found.values(), *axis_sizes]):
            # The integer hyper-parameters' values too: an axis may be sized by one.
            return {**sizes, **found, **{s: v for s, v in values.items() if s.is_integer}}
    raise ValueError(f"{forward.name}: no small sizes give every derived extent at least 1")


def draw(forward, sizes, rng, scale=1.0) -> dict:
    """Arrays for every argument (float64): normal values, positive where declared;
    constants are rows of a distribution (targets sum to 1, running variances > 0); index arrays (labels,
    token ids) integers over the extent they index."""
    out = {}
    for t in forward.arguments:
        shape = extents.shape(t.dims, sizes)
        if t.role == "index":
            out[t.name] = rng.integers(0, int(sp.sympify(t.of).subs(sizes)), shape)
        elif t.role == "const":
            a = rng.uniform(0.1, 1.0, shape)
            out[t.name] = a / a.sum(axis=-1, keepdims=True) if len(shape) > 1 else a
        elif t.positive:
            out[t.name] = rng.uniform(0.1, 1.0, shape)
        else:
            out[t.name] = scale * rng.standard_normal(shape)
    return out


# -- user-style forwards (tests/user_forwards/), derived by the command line as a user would ----------

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

USER_FORWARDS = Path(__file__).resolve().parent / "user_forwards"
USER_MODULES = sorted(p.stem for p in USER_FORWARDS.glob("*.py"))


def load_file(path: Path, name: str = ""):
    """A generated kernel file by its path, as part of its folder's package (its helpers beside it)."""
    from runtime.kernels.calling import load_file as load
    return load(path)


def derived_once(tmp_path_factory, label: str, files, *options) -> Path:
    """The folder ``python -m derive FILES --out DIR`` wrote, derived once per test run: under pytest-xdist
    the first worker to ask derives it and the others wait for it (a lock file in the run's shared folder)."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent   # the folder every worker's own temporary folder lies in
    out, done, failed = root / label, root / f"{label}.done", root / f"{label}.failed"
    with open(root / f"{label}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists() and not failed.exists():
            # A failure is kept too: the other workers report it rather than derive again.
            try:
                r = subprocess.run([sys.executable, "-m", "derive", *map(str, files), *options, "--out", str(out)],
                                   cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                                   timeout=1200)
                (done if r.returncode == 0 else failed).write_text(r.stderr)
            except subprocess.TimeoutExpired:
                failed.write_text(f"python -m derive {label}: no answer in 1200 s")
    assert not failed.exists(), failed.read_text()
    return out


@pytest.fixture(scope="session")
def user_derived(tmp_path_factory):
    """The folder ``python -m derive tests/user_forwards/*.py --out DIR`` wrote (one run for all of them)."""
    return derived_once(tmp_path_factory, "user_kernels", [USER_FORWARDS / f"{n}.py" for n in USER_MODULES])


@pytest.fixture(scope="session")
def user_kernels(user_derived):
    """(name, backend) -> the generated kernel module of a user forward."""
    cache = {}

    def get(name, backend):
        if (name, backend) not in cache:
            cache[name, backend] = load_file(user_derived / backend / f"{name}.py", f"user_{backend}_{name}")
        return cache[name, backend]

    return get


def load_user_forward(name: str):
    from derive import registry
    return registry.load_path(USER_FORWARDS / f"{name}.py")
