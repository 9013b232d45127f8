"""Numerics over the whole floating range: generated kernels against exact mpmath references.

Two probes, for every registered module, every example and every user-style
forward, in float32 and float64, on both backends:

- ``elementwise``: every dimension of size 1, each input swept over the
  whole range of the dtype (0, ±the smallest subnormal … ±the largest finite
  value, on a logarithmic grid, plus the usual kinks and overflow points);
  the other arguments at fixed moderate values.
- ``scaled``: small shapes (2–3 per dimension), the inputs a fixed random
  pattern times 10^k, k across the whole range of the dtype (a norm of
  inputs whose squares overflow is still a finite number).

A result (the forward's output, every gradient) is judged where its exact
value is a finite number of the dtype: it must be finite, and within

    K u (|r| + Σ_i |x_i ∂r/∂x_i|) + K tiny

of the exact value (u the unit roundoff, tiny the smallest normal number):
a few ulps times the condition number of the problem, the bound a backward
stable evaluation meets. Where that bound itself exceeds the largest finite
value, nothing is judged.

The elementwise sweep holds every kernel to exactly that. The scaled probe
adds to the bound of a gradient ``Σ_k |s_k ∂r/∂s_k|`` over what the forward
saves beyond its arguments (``saved_sensitivity``): a backward reads those
rounded to the dtype, and no backward that reads them can do better. That is
where reductions lose the components of a gradient far below ``u |dY|``:
softmax's ``Y_q (dY_q − Σ_c Y_c dY_c)`` on a nearly one-hot row, layer
norm's projection on two features (exactly zero but for ``eps``), as in
PyTorch. Elementwise losses (``1 − tanh²`` from a saved ``tanh``) are
still caught by the elementwise sweep, which allows nothing for saved values.

``python -m tests.full_range`` prints the worst error per module and dtype
(in units of that bound, and as a plain relative error); ``--order 2`` the same for
the second order, each registry module's ``_hvp`` (every upstream swept too).
"""
from __future__ import annotations

import importlib
import math
import warnings
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

from derive import examples, registry
from derive.engine import extents
from derive.engine.verify import normalised_axes
from tests.exact import Reference, concrete, labels, problem, small_sizes

K = 16           # ulps, times the condition number
FIRST_MOST = 24  # the scaled probe: at most this many elements per argument
SECOND_MOST = 6  # the scaled probe of the second order: at most this many elements per argument
DTYPES = (np.float32, np.float64)


def grid(dtype) -> np.ndarray:
    """0 and ± a logarithmic sweep from the smallest subnormal to the largest finite value, plus landmarks."""
    fi = np.finfo(dtype)
    lo = math.floor(math.log10(float(fi.smallest_subnormal)))
    hi = math.floor(math.log10(float(fi.max)))
    step = 1 if dtype == np.float32 else 5
    mags = [10.0 ** k for k in range(lo + 1, hi + 1, step)]
    mags += [float(fi.smallest_subnormal), float(fi.tiny), float(fi.max), 1e-3, 0.5, 1.0, 2.0, 3.0, 6.0,
             20.0, 44.0, 88.5, 89.0, 104.0, 709.0, 710.0, 745.0, 1e4, 3.7, 0.3]
    values = {dtype(m) for m in mags if np.isfinite(dtype(m)) and dtype(m) != 0}
    values = sorted(values)
    return np.array([-v for v in reversed(values)] + [dtype(0)] + values, dtype=dtype)


def scales(dtype) -> list:
    """Powers of ten from just above the smallest normal number to just below the largest finite one."""
    fi = np.finfo(dtype)
    lo = math.ceil(math.log10(float(fi.tiny))) + 2
    hi = math.floor(math.log10(float(fi.max))) - 2
    step = 4 if dtype == np.float32 else 30
    return [10.0 ** k for k in range(lo, hi + 1, step)] + [1.0]


# -- the modules -------------------------------------------------------------------------------------------

@dataclass
class Subject:
    kind: str       # "registry", "examples" or "user"
    name: str
    forward: object = None
    kernels: dict = field(default_factory=dict)   # backend -> generated module


def subjects(user_kernels=None, user_forward=None, user_modules=()) -> list:
    out = [Subject("registry", n, registry.load(n)) for n in registry.MODULES]
    out += [Subject("examples", f.name, f) for f in examples.forwards()]
    out += [Subject("user", n, user_forward(n)) for n in user_modules]
    for s in out:
        for backend in ("numpy", "torch"):
            if s.kind == "user":
                s.kernels[backend] = user_kernels(s.name, backend)
            else:
                package = "generated" if s.kind == "registry" else "generated.examples"
                s.kernels[backend] = importlib.import_module(f"{package}.{backend}.{s.name}")
    return out


# -- running kernels ---------------------------------------------------------------------------------------

def _torch():
    import torch
    return torch


def _values(a, dtype):
    """``a`` in ``dtype``; an index array (labels) stays integers."""
    a = np.asarray(a)
    return a if a.dtype.kind in "iu" else a.astype(dtype)


def _labels(forward, sizes) -> dict:
    """The index arrays' fixed values (tests/exact.py ``labels``), as integer arrays."""
    out = {}
    for t in forward.arguments:
        if t.role == "index":
            table = labels(t, sizes)
            a = np.zeros(extents.shape(t.dims, sizes), dtype=np.int64)
            for ix, v in table.items():
                a[ix] = v
            out[t.name] = a
    return out


def _upstreams(k, upstream, wrap, scalar) -> tuple:
    """The backward's first arguments: ``upstream`` (one array or number, or a dict by output for several)."""
    if not k.UPSTREAMS:
        return ()
    each = upstream if isinstance(upstream, dict) else {k.OUTPUTS[0]: upstream}
    return tuple(scalar(each[o]) if np.ndim(each[o]) == 0 else wrap(each[o]) for o in k.OUTPUTS)


def _wrappers(dtype, backend):
    """(array in the backend's type and ``dtype``, scalar upstream in the type the backend's kernels take)."""
    if backend == "numpy":
        return (lambda a: _values(a, dtype)), dtype
    torch = _torch()
    return (lambda a: torch.as_tensor(_values(a, dtype))), float


def run(module, name: str, arrays: dict, upstream, dtype, backend):
    """{(name, index): value} for the outputs and every gradient of kernel module ``module``, in ``dtype``.
    ``upstream``: an array (a number for a loss), or with several outputs a dict of them by output."""
    k = module
    wrap, scalar = _wrappers(dtype, backend)
    fwd, bwd = getattr(k, f"{name}_forward"), getattr(k, f"{name}_backward")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        outs = fwd(*[wrap(arrays[n]) for n in k.ARGUMENTS], **k.SCALARS)
        outs = outs if len(k.RETURNS) > 1 else (outs,)
        env = {**{n: wrap(a) for n, a in arrays.items()}, **dict(zip(k.RETURNS, outs))}
        grads = bwd(*_upstreams(k, upstream, wrap, scalar), **{n: env[n] for n in k.SAVED}, **k.SCALARS)
        grads = grads if len(k.GRADIENTS) > 1 else (grads,)
    return _elements([*zip(k.OUTPUTS, outs), *zip(k.GRADIENTS, grads)])


def _elements(named) -> dict:
    got = {}
    for n, v in named:
        v = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
        for ix in np.ndindex(v.shape):
            got[(n, ix)] = v[ix]
    return got


def run_hvp(module, name: str, arrays: dict, upstream, directions: dict, dtype, backend):
    """{(name, index): value} for every result of ``module``'s ``<name>_hvp`` (hT, hdY) in ``dtype``, along
    ``directions`` (by gradient name, dT), at ``upstream`` (as for ``run``)."""
    k = module
    wrap, scalar = _wrappers(dtype, backend)
    values = {**{n: wrap(a) for n, a in arrays.items()}, **dict(zip(k.UPSTREAMS, _upstreams(k, upstream, wrap, scalar)))}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        out = getattr(k, f"{name}_hvp")(*[wrap(directions[g]) for g in k.GRADIENTS],
                                        **{n: values[n] for n in k.HVP_ARGUMENTS}, **k.SCALARS)
    return _elements(zip(k.HVP_RESULTS, out if len(k.HVP_RESULTS) > 1 else (out,)))


# -- judging ---------------------------------------------------------------------------------------------

@dataclass
class Worst:
    units: float = 0.0        # error / (u (|r| + Σ|x ∂r/∂x|) + tiny)
    relative: float = 0.0     # error / |r|
    where: str = ""
    judged: int = 0
    unknown: int = 0          # finite in the dtype, but no reference within the precision budget
    failures: list = field(default_factory=list)


def judge(got: dict, exact: dict, dtype, worst: Worst, where: str):
    fi = np.finfo(dtype)
    u, tiny, big = float(fi.eps) / 2, mpmath.mpf(float(fi.tiny)), mpmath.mpf(float(fi.max))
    for key, (r, bound) in exact.items():
        if not isinstance(r, mpmath.mpc) and mpmath.isnan(r):
            worst.unknown += 1
            continue
        if isinstance(r, mpmath.mpc) or not mpmath.isfinite(r) or abs(r) > big:
            continue  # not a finite number of this dtype: nothing to judge
        allowed = K * u * bound + K * tiny
        if not mpmath.isfinite(allowed) or allowed > big:
            continue  # so ill-conditioned that any value is within the bound
        c = got[key]
        worst.judged += 1
        if not np.isfinite(c):
            worst.failures.append(f"{where} {key[0]}{list(key[1])}: {c} where the exact value is {mpmath.nstr(r, 8)}")
            continue
        err = abs(mpmath.mpf(float(c)) - r)
        units = float(err / (u * bound + tiny))
        rel = float(err / abs(r)) if r != 0 else (0.0 if err == 0 else float("inf"))
        if units > worst.units:
            worst.units, worst.where = units, f"{where} {key[0]}{list(key[1])}: {float(c)!r} vs {mpmath.nstr(r, 17)}"
        worst.relative = max(worst.relative, rel if abs(r) >= tiny else 0.0)
        if err > allowed:
            worst.failures.append(f"{where} {key[0]}{list(key[1])}: {float(c)!r} vs exact {mpmath.nstr(r, 17)} "
                                  f"({units:.1f} ulps x condition, allowed {K})")


def saved_sensitivity(module, name: str, arrays: dict, upstream, delta: float = 2.0 ** -24) -> dict:
    """{(gradient, index): Σ_k |s_k ∂r/∂s_k|} over the elements s_k of what the forward saves beyond its
    arguments (its outputs, a normaliser): a backward reads them rounded to the dtype, so no backward
    that reads them can be more accurate than this allows. Central differences of the float64 kernel."""
    k = module
    # Positions (a pool's arg-max) are not values read rounded: nothing to perturb there.
    extra = [n for n in k.SAVED if n not in k.ARGUMENTS and n not in k.INDICES]
    if not extra:
        return {}
    with np.errstate(all="ignore"):
        outs = getattr(k, f"{name}_forward")(*[_values(arrays[n], np.float64) for n in k.ARGUMENTS],
                                             **k.SCALARS)
    env = {**arrays, **dict(zip(k.RETURNS, outs if len(k.RETURNS) > 1 else (outs,)))}
    first = _upstreams(k, upstream, lambda a: a, float)

    def backward(changed):
        g = getattr(k, f"{name}_backward")(*first, **{n: changed.get(n, env[n]) for n in k.SAVED}, **k.SCALARS)
        return dict(zip(k.GRADIENTS, g if len(k.GRADIENTS) > 1 else (g,)))

    total = {}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n in extra:
            base = np.asarray(env[n], dtype=np.float64)
            for ix in np.ndindex(base.shape):
                if base[ix] == 0 or not np.isfinite(base[ix]):
                    continue
                up, down = base.copy(), base.copy()
                up[ix] *= 1 + delta
                down[ix] *= 1 - delta
                gu, gd = backward({n: up}), backward({n: down})
                for g in k.GRADIENTS:
                    diff = np.abs(np.asarray(gu[g]) - np.asarray(gd[g])) / (2 * delta)
                    for jx in np.ndindex(diff.shape):
                        if np.isfinite(diff[jx]):
                            total[(g, jx)] = total.get((g, jx), 0.0) + float(diff[jx])
    return total


def _fixed(forward, t):
    """A moderate value for an argument that is not being swept."""
    normalised = normalised_axes(forward)
    if t.name in normalised:
        return normalised[t.name][1]
    if t.role == "const" or t.positive:
        return 0.3 if t.role == "const" else 0.7
    return 0.6 if t.role == "param" else 0.7


_REFERENCES: dict = {}


def reference(f, sizes, order):
    """(problem, Reference) of ``f`` at ``sizes``: the last two made are kept, since both dtypes of a probe
    differentiate the same problem (by brute force: most of a probe's time)."""
    key = (f.name, f.source, tuple(sorted((str(d), n) for d, n in sizes.items())), order)
    if key not in _REFERENCES:
        prob = problem(f, sizes, order)
        _REFERENCES[key] = (prob, Reference(prob))
        while len(_REFERENCES) > 2:
            _REFERENCES.pop(next(iter(_REFERENCES)))
    return _REFERENCES[key]


def elementwise(subject, dtype, backends=("numpy", "torch"), order=1) -> Worst:
    """Every dimension of size 1; each input swept over the whole range of ``dtype`` (``order`` 2: the
    ``_hvp`` kernel, each upstream swept too, every direction 1)."""
    f = subject.forward
    # Every dimension 1 where it can be (a pooling window needs its input at least as large).
    sizes = concrete(f, {d: 1 for d in extents.free_dimensions(f)}, "defaults")
    prob, ref = reference(f, sizes, order)
    worst = Worst()
    values = grid(dtype)
    swept = [t.name for t in f.arguments if t.role == "input"]
    if order == 2:
        swept += [o.tensor.name for o in f.outputs]   # an upstream, by its output
    positive = {t.name for t in f.arguments if t.positive}
    outputs = {o.tensor.name for o in f.outputs}
    for name in swept:
        label = f.upstream_name(name) if name in outputs else name
        for x in values:
            if name in positive and x <= 0:
                continue
            arrays, point = _labels(f, sizes), {}
            for a in f.arguments:
                if a.role == "index":
                    continue
                v = float(x) if a.name == name else _fixed(f, a)
                v = float(dtype(v))
                arrays[a.name] = np.full(extents.shape(a.dims, sizes), v)
                for sym in prob.arguments[a.name].values():
                    point[sym] = v
            ups = {}
            for o in f.outputs:
                v = float(x) if o.tensor.name == name else 1.0
                ups[o.tensor.name] = np.full(extents.shape(o.tensor.dims, sizes), v) if o.tensor.dims else v
            for (o, _), sym in prob.upstream.items():
                point[sym] = float(np.asarray(ups[o]).flat[0])
            for sym in (prob.directions or {}).values():
                point[sym] = 1.0
            for n, sym in prob.scalars.items():
                point[sym] = float(dtype(f.scalars[n].default))
            exact = ref.evaluate(point)
            up = ups if len(ups) > 1 else ups[f.out.tensor.name]
            for backend in backends:
                k = subject.kernels[backend]
                if order == 1:
                    got = run(k, subject.name, arrays, up, dtype, backend)
                else:
                    ones = {g: np.ones(np.shape(arrays[g[1:]])) for g in k.GRADIENTS}
                    got = run_hvp(k, subject.name, arrays, up, ones, dtype, backend)
                judge(got, exact, dtype, worst, f"{backend} {'order 2 ' if order == 2 else ''}{label}={float(x):.6g}")
    return worst


def scaled(subject, dtype, backends=("numpy", "torch"), order=1) -> Worst:
    """Small shapes; the inputs a fixed random pattern times 10^k across the range (``order`` 2: the
    ``_hvp`` kernel, along a fixed random pattern of directions)."""
    f = subject.forward
    # Sizes 2, 3, 2, …, shrunk to at most FIRST_MOST elements an argument (SECOND_MOST for second derivatives,
    # whose brute force grows faster still), then grown where a derived extent needs it (a convolution's input):
    # a reduction of 8 is as much a reduction as one of 12, at half the cost.
    sizes = small_sizes(f, most=FIRST_MOST if order == 1 else SECOND_MOST, integers="defaults")
    prob, ref = reference(f, sizes, order)
    rng = np.random.default_rng(0)
    normalised = normalised_axes(f)
    pattern = {}
    for t in f.arguments:
        shape = extents.shape(t.dims, sizes)
        if t.role == "index":
            pattern[t.name] = _labels(f, sizes)[t.name]
        elif t.name in normalised:
            axis, total = normalised[t.name]
            a = rng.uniform(0.2, 1.0, shape)
            pattern[t.name] = total * a / a.sum(axis=axis, keepdims=True)
        elif t.role == "const" or t.positive:
            pattern[t.name] = rng.uniform(0.5, 2.0, shape)
        else:
            pattern[t.name] = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)
    upstream = {}
    for o in f.outputs:
        shape = extents.shape(o.tensor.dims, sizes)
        upstream[o.tensor.name] = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape) if shape else 0.75
    directions = {f"d{t.name}": rng.choice([-1.0, 1.0], np.shape(pattern[t.name])) *
                  rng.uniform(0.5, 2.0, np.shape(pattern[t.name])) for t in f.differentiable}
    directions = {g: _values(_values(v, dtype), np.float64) for g, v in directions.items()}
    worst = Worst()
    for scale in scales(dtype):
        arrays = {n: (a * scale if t.role == "input" else a)
                  for (n, a), t in zip(pattern.items(), f.arguments)}
        arrays = {n: _values(_values(a, dtype), np.float64) for n, a in arrays.items()}
        point = {}
        for n, syms in prob.arguments.items():
            for ix, sym in syms.items():
                point[sym] = float(arrays[n][ix])
        up = {o: np.asarray(u, dtype=dtype).astype(np.float64) for o, u in upstream.items()}
        for (o, ix), sym in prob.upstream.items():
            point[sym] = float(up[o][ix])
        up = up if len(up) > 1 else {o: u if u.ndim else float(u) for o, u in up.items()}[f.out.tensor.name]
        for name, sym in prob.scalars.items():
            point[sym] = float(dtype(f.scalars[name].default))
        for (g, ix), sym in (prob.directions or {}).items():
            point[sym] = float(directions[g][ix])
        exact = ref.evaluate(point)
        if order == 2:   # the _hvp reads the arguments and upstreams alone: nothing saved to allow for
            for backend in backends:
                got = run_hvp(subject.kernels[backend], subject.name, arrays, up, directions, dtype, backend)
                judge(got, exact, dtype, worst, f"{backend} order 2 scale {scale:.0e}")
            continue
        saved = saved_sensitivity(subject.kernels["numpy"], subject.name, arrays, up)
        with_saved = {key: (r, bound + mpmath.mpf(saved.get(key, 0.0))) for key, (r, bound) in exact.items()}
        for backend in backends:
            got = run(subject.kernels[backend], subject.name, arrays, up, dtype, backend)
            judge(got, with_saved, dtype, worst, f"{backend} scale {scale:.0e}")
    return worst


def report_second():  # pragma: no cover - a command-line summary
    """The second order (each registry module's ``_hvp``): both probes, both dtypes."""
    print(f"{'module':24} {'dtype':8} {'probe':12} {'judged':>7} {'no ref':>7} {'worst (u·cond)':>15} "
          f"{'worst relative':>15}  (second order)")
    for s in subjects():
        if s.name not in registry.SECOND_ORDER:
            continue
        for dtype in DTYPES:
            for probe in (elementwise, scaled):
                w = probe(s, dtype, order=2)
                flag = f"  FAIL ({len(w.failures)}: {w.failures[0]})" if w.failures else ""
                print(f"{s.name:24} {dtype.__name__:8} {probe.__name__:12} {w.judged:7d} {w.unknown:7d} {w.units:15.2f} "
                      f"{w.relative:15.2e}{flag}", flush=True)


def report():  # pragma: no cover - a command-line summary
    from tests.conftest import USER_FORWARDS, USER_MODULES, load_file, load_user_forward
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    out = Path(tempfile.mkdtemp())
    files = [str(USER_FORWARDS / f"{n}.py") for n in USER_MODULES]
    subprocess.run([sys.executable, "-m", "derive", *files, "--out", str(out)], check=True, capture_output=True)
    cache = {}

    def user_kernels(name, backend):
        if (name, backend) not in cache:
            cache[name, backend] = load_file(out / backend / f"{name}.py", f"user_{backend}_{name}")
        return cache[name, backend]

    print(f"{'module':24} {'dtype':8} {'probe':12} {'judged':>7} {'no ref':>7} {'worst (u·cond)':>15} "
          f"{'worst relative':>15}")
    for s in subjects(user_kernels, load_user_forward, USER_MODULES):
        for dtype in DTYPES:
            for probe in (elementwise, scaled):
                w = probe(s, dtype)
                flag = "  FAIL" if w.failures else ""
                print(f"{s.name:24} {dtype.__name__:8} {probe.__name__:12} {w.judged:7d} {w.unknown:7d} {w.units:15.2f} "
                      f"{w.relative:15.2e}{flag}", flush=True)


if __name__ == "__main__":  # pragma: no cover
    import sys
    report_second() if sys.argv[1:] == ["--order", "2"] else report()
