"""Every emitted kernel file is executed before it is written.

For each module the rendered NumPy (and, when torch is installed, Torch) file
is imported from memory and its kernels are run on small random float64
inputs drawn from the forward's declarations:

- the forward and backward run, return what the metadata says, finite values
  of the right shapes;
- the backward agrees with central differences of the generated forward
  (a vector–Jacobian product against a random upstream gradient, or the full
  Jacobian);
- the Torch kernels agree with the NumPy ones.

A failure is one ``DeriveError`` naming the module, the kernel, the statement
(the line of generated code that raised, or the first whose value is not
finite) and the problem; the caller then writes nothing.
"""
from __future__ import annotations

import contextlib
import hashlib
import sys
import types
import warnings

import numpy as np
import sympy as sp

from . import extents as extents_
from .errors import DeriveError
from .ir import MaxOver

# Relative agreement asked of the backward against central differences (float64, step 1e-6).
GRADIENT_TOLERANCE = 1e-5
BACKENDS_TOLERANCE = 1e-9
# Elements of the largest argument verify draws (the gradient check is two forwards per element).
MOST_ELEMENTS = 400


def _package(helpers: str) -> str:
    """A package in sys.modules holding the rendered ``_helpers.py`` (one per distinct text), so that a
    kernel's ``from ._helpers import ...`` resolves as it does in the output folder."""
    name = f"_derive_verify_{hashlib.sha1(helpers.encode()).hexdigest()[:12]}"
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = []
        module = types.ModuleType(f"{name}._helpers")
        module.__package__ = name
        exec(compile(helpers, f"<generated {name}/_helpers.py>", "exec"), module.__dict__)
        package._helpers = module
        sys.modules[name], sys.modules[module.__name__] = package, module
    return name


def _load(text: str, filename: str, helpers: str):
    package = _package(helpers)
    module = types.ModuleType(f"{package}.kernel")
    module.__file__, module.__package__ = filename, package
    exec(compile(text, filename, "exec"), module.__dict__)
    return module


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _sizes(forward, rng, scalars=None) -> dict:
    """Small distinct sizes for the declared dimensions; derived extents (a convolution's Ho) computed,
    redrawn until each is at least 1 with the hyper-parameters ``scalars`` (default: the defaults)."""
    derived = getattr(forward, "derived", {})
    dims = extents_.free_dimensions(forward)
    defaults = {s.symbol: (scalars or {}).get(s.name, s.default) for s in forward.scalars.values()}
    axes = extents_.expression_axes(forward)

    def extents(sizes):
        # Derived extents, then every axis sized by an expression (2*P, D − 1): each must be at least 1.
        out = {d: int(f.subs({**sizes, **defaults})) for d, f in derived.items()}
        return {**out, **{d: int(sp.sympify(d).subs({**sizes, **defaults, **out})) for d in axes}}

    def largest(sizes):
        values = {**sizes, **defaults, **extents(sizes)}
        return max((int(np.prod(extents_.shape(t.dims, values))) for t in forward.arguments), default=0)

    for attempt in range(100):
        top = 2 + max(len(dims), 3) + attempt // 10
        sizes = dict(zip(dims, rng.permutation(np.arange(2, top))[:len(dims)].tolist()))
        if not all(v >= 1 for v in extents(sizes).values()):
            continue
        # Central differences run the forward twice per element: keep each argument small (a 3-D
        # convolution has nine dimensions), shrinking the largest size while the extents stay ≥ 1.
        while largest(sizes) > MOST_ELEMENTS:
            for d in sorted(sizes, key=lambda d: -sizes[d]):
                smaller = {**sizes, d: sizes[d] - 1}
                if sizes[d] > 1 and all(v >= 1 for v in extents(smaller).values()):
                    sizes = smaller
                    break
            else:
                break
        found = {**sizes, **{d: n for d, n in extents(sizes).items() if isinstance(d, sp.Symbol)}}
        # The hyper-parameters' values too: an axis may be sized by one (k*C).
        found.update({sym: v for sym, v in defaults.items() if sym.is_integer})
        return {d: int(n) for d, n in found.items()}
    raise ValueError("no small sizes give every derived extent at least 1")


def normalised_axes(forward) -> dict:
    """Constants the module assumes sum to a number along an axis (Σ_k T_sk = 1): name -> (axis, total)."""
    out = {}
    for pattern, value in forward.assumptions:
        if isinstance(pattern, sp.Sum) and isinstance(pattern.function, sp.Indexed) and value.is_number:
            e, (k, *_) = pattern.function, pattern.limits[0]
            if k in e.indices:
                out[str(e.base.label)] = (list(e.indices).index(k), float(value))
    return out


def draw(forward, rng, sizes=None) -> dict:
    """float64 arrays for the forward's arguments: normal; uniform(0.5, 1.5) where declared positive;
    constants positive, normalised where the module assumes a sum."""
    sizes = sizes or _sizes(forward, rng)
    normalised = normalised_axes(forward)
    arrays = {}
    for t in forward.arguments:
        shape = extents_.shape(t.dims, sizes)
        if t.role == "index":   # labels, token ids: integers over the extent they index
            arrays[t.name] = rng.integers(0, int(sp.sympify(t.of).subs(sizes)), shape)
        elif t.name in normalised:
            axis, total = normalised[t.name]
            a = rng.uniform(0.1, 1.0, shape)
            arrays[t.name] = total * a / a.sum(axis=axis, keepdims=True)
        elif t.positive or t.role == "const":
            arrays[t.name] = rng.uniform(0.5, 1.5, shape)
        else:
            arrays[t.name] = rng.standard_normal(shape)
    return arrays


def _as_tuple(x, names):
    return tuple(x) if len(names) > 1 else (x,)


class _Trace:
    """The locals of the last call of ``name`` defined in ``filename``, at its return."""

    def __init__(self, filename):
        self.filename, self.locals = filename, {}

    def __call__(self, frame, event, arg):
        if event == "return" and frame.f_code.co_filename == self.filename:
            self.locals = dict(frame.f_locals)


@contextlib.contextmanager
def _traced(filename):
    trace = _Trace(filename)
    previous = sys.getprofile()
    sys.setprofile(trace)
    try:
        yield trace
    finally:
        sys.setprofile(previous)


class Verifier:
    def __init__(self, built, files: dict, prefix: str = ""):
        self.built, self.forward = built, built.forward
        self.name = self.forward.name
        self.texts = {b: files[f"{prefix}{b}/{self.name}.py"] for b in ("numpy", "torch")}
        self.helpers = {b: files[f"{prefix}{b}/_helpers.py"] for b in ("numpy", "torch")}

    def fail(self, kernel: str, where: str, problem: str):
        raise DeriveError(self.name, "verify", f"{kernel}: {where}" if where else kernel, problem)

    def load(self, backend):
        try:
            return _load(self.texts[backend], f"<generated {backend}/{self.name}.py>", self.helpers[backend])
        except Exception as e:
            self.fail(f"{backend}/{self.name}.py", self.statement_of(backend, e), f"cannot be imported: {type(e).__name__}: {e}")

    def statement_of(self, backend, exc) -> str:
        """The line of generated code an exception came from."""
        tb = exc.__traceback__
        filename = f"<generated {backend}/{self.name}.py>"
        line = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == filename:
                line = tb.tb_lineno
            tb = tb.tb_next
        if line is None:
            return ""
        return self.texts[backend].splitlines()[line - 1].strip()

    def call(self, backend, module, kernel: str, /, *args, **kwargs):
        """Run one kernel; an exception or a non-finite local names the statement."""
        fn = getattr(module, kernel)
        filename = f"<generated {backend}/{self.name}.py>"
        with _traced(filename) as trace, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with np.errstate(all="ignore"):
                    out = fn(*args, **kwargs)
            except Exception as e:
                self.fail(kernel, self.statement_of(backend, e), f"raises {type(e).__name__}: {e}")
        kernel_ir = next(k for k in self.built.kernels + [self.built.hvp] if k is not None and k.name == kernel)
        results = [trace.locals.get(r) for r in kernel_ir.results]
        if any(v is not None and not np.all(np.isfinite(_numpy(v))) for v in results):
            # Name the first statement whose value is not finite.
            for st in kernel_ir.statements:
                value = trace.locals.get(st.name)
                if value is not None and not np.all(np.isfinite(_numpy(value))):
                    line = next((ln.strip() for ln in self.texts[backend].splitlines()
                                 if ln.strip().startswith(f"{st.name} = ")), st.name)
                    self.fail(kernel, line, _not_finite_hint(st, _numpy(value)))
        return out

    def run(self, backend, module, arrays, upstreams, wrap):
        """(forward outputs by name, gradients by name) for one backend; ``upstreams``: one per UPSTREAMS."""
        m = module
        scalars = dict(self.scalars)
        args = [wrap(arrays[n]) for n in m.ARGUMENTS]
        outs = _as_tuple(self.call(backend, m, f"{self.name}_forward", *args, **scalars), m.RETURNS)
        if len(outs) != len(m.RETURNS):
            self.fail(f"{self.name}_forward", "", f"returns {len(outs)} values, RETURNS names {len(m.RETURNS)}")
        env = {**{n: wrap(a) for n, a in arrays.items()}, **dict(zip(m.RETURNS, outs))}
        first = tuple(wrap(u) if np.ndim(u) else u for u in upstreams)
        saved = {n: env[n] for n in m.SAVED}
        grads = _as_tuple(self.call(backend, m, f"{self.name}_backward", *first, **saved, **scalars), m.GRADIENTS)
        if len(grads) != len(m.GRADIENTS):
            self.fail(f"{self.name}_backward", "", f"returns {len(grads)} values, GRADIENTS names {len(m.GRADIENTS)}")
        if len(first) > 1:
            # Several outputs: an omitted upstream (None) is zero; so each gradient is the sum of the others' parts.
            parts = []
            for n, u in enumerate(m.UPSTREAMS):
                only = tuple(a if k == n else None for k, a in enumerate(first))
                parts.append(_as_tuple(self.call(backend, m, f"{self.name}_backward", *only, **saved, **scalars),
                                       m.GRADIENTS))
            for k, (g, full) in enumerate(zip(m.GRADIENTS, grads)):
                if not _close(sum(_numpy(p[k]) for p in parts), _numpy(full), BACKENDS_TOLERANCE):
                    self.fail(f"{self.name}_backward", f"{g} = ...", "with one upstream at a time (the others "
                              "omitted), the parts do not add up to the gradient with all of them")
        # Each flag off on its own, then all of them: a skipped gradient is None, the others do not change.
        flags = list(m.OPTIONAL.values())
        for off in ([[f] for f in flags] + ([flags] if len(flags) > 1 else [])):
            partial = _as_tuple(self.call(backend, m, f"{self.name}_backward", *first, **saved, **scalars,
                                          **{f: False for f in off}), m.GRADIENTS)
            for n, full, got in zip(m.GRADIENTS, grads, partial):
                skipped = m.OPTIONAL.get(n) in off
                if (got is None) != skipped or (got is not None and not _close(
                        _numpy(got), _numpy(full), BACKENDS_TOLERANCE)):
                    self.fail(f"{self.name}_backward", f"{n} = ...", f"differs with {', '.join(off)}=False")
        for variant, names in m.VARIANTS.items():
            variant_arrays = draw(self.forward.variants[variant], np.random.default_rng(1), self._sizes)
            self.call(backend, m, f"{self.name}_{variant}_forward",
                      *[wrap(variant_arrays[n]) for n in names], **scalars)
        return ({n: _numpy(v) for n, v in zip(m.RETURNS, outs)},
                {n: _numpy(v) for n, v in zip(m.GRADIENTS, grads)})

    def check(self):
        """Once with the default hyper-parameters; again with integer ones exercised (a stride of 2, a
        padding of 1), which take code paths the defaults may not (dilation, padding)."""
        notes = []
        defaults = {s.name: s.default for s in self.forward.scalars.values()}
        exercised = {**defaults, **{s.name: 2 if s.symbol.is_positive else 1 for s in self.forward.scalars.values()
                                    if s.symbol.is_integer}}
        for scalars in [defaults] + ([exercised] if exercised != defaults else []):
            self.scalars = scalars
            notes = self.check_with()
        return notes

    def check_with(self):
        rng = np.random.default_rng(0)
        self._sizes = _sizes(self.forward, rng, self.scalars)
        arrays = draw(self.forward, rng, self._sizes)
        numpy_module = self.load("numpy")
        m = numpy_module
        dims = {self.forward.upstream_name(o.tensor.name): o.tensor.dims for o in self.forward.outputs}
        upstreams = []
        for u in m.UPSTREAMS:
            shape = extents_.shape(dims[u], self._sizes)
            upstreams.append(rng.standard_normal(shape) if shape else 0.75)
        outs, grads = self.run("numpy", m, arrays, upstreams, lambda a: a)
        self.check_gradients(m, arrays, upstreams, outs, grads)
        hvp = self.check_hvp(m, arrays, upstreams) if hasattr(m, "HVP_DIRECTIONS") else {}
        torch = _torch()
        if torch is None:
            return ["torch is not installed: the Torch kernels were not run"]
        torch_module = self.load("torch")
        touts, tgrads = self.run("torch", torch_module, arrays, upstreams,
                                 lambda a: torch.as_tensor(_as_float(a)))
        if hvp:
            got = self.products("torch", torch_module, arrays, upstreams, hvp["directions"],
                                lambda a: torch.as_tensor(_as_float(a)))
            for n, a in hvp["products"].items():
                if not _close(a, got[n], BACKENDS_TOLERANCE):
                    self.fail(f"{self.name}_hvp", f"{n} = ...",
                              f"the Torch and NumPy kernels disagree (max difference {_diff(a, got[n]):.2e})")
        for kind, a, b in (("forward", outs, touts), ("backward", grads, tgrads)):
            for n in a:
                if n in m.INDICES:   # positions (a pool's arg-max) in each backend's own representation
                    continue
                if not _close(a[n], b[n], BACKENDS_TOLERANCE):
                    self.fail(f"{self.name}_{kind}", f"{n} = ...",
                              f"the Torch and NumPy kernels disagree (max difference {_diff(a[n], b[n]):.2e})")
        return []

    def products(self, backend, m, arrays, upstreams, directions, wrap) -> dict:
        """The results of ``<m>_hvp`` along ``directions`` (one per gradient), by name, as float64 arrays."""
        values = {**arrays, **dict(zip(m.UPSTREAMS, upstreams))}
        args = {n: wrap(values[n]) if np.ndim(values[n]) else values[n] for n in m.HVP_ARGUMENTS}
        out = self.call(backend, m, f"{self.name}_hvp", *[wrap(v) for v in directions], **args, **self.scalars)
        out = _as_tuple(out, m.HVP_RESULTS)
        return {n: _numpy(v) for n, v in zip(m.HVP_RESULTS, out)}

    def check_hvp(self, m, arrays, upstreams) -> dict:
        """``<m>_hvp`` against central differences of the backward: for random directions v of the gradients and w
        of what they depend on (the differentiable arguments and the upstreams), Σ <h, w> must be the derivative
        along w of Σ <v, gradients>. Returns the directions and the products, for the Torch kernels to match."""
        rng = np.random.default_rng(2)
        values = {**arrays, **dict(zip(m.UPSTREAMS, upstreams))}
        _, grads = self.run("numpy", m, arrays, upstreams, lambda a: a)
        directions = [rng.standard_normal(np.shape(grads[g])) for g in m.GRADIENTS]
        products = self.products("numpy", m, arrays, upstreams, directions, lambda a: a)
        wrt = {by: r for r, by in m.HVP_WRT.items()}   # X -> hX, dY -> hdY
        w = {n: rng.standard_normal(np.shape(values[n])) for n in wrt}

        def along(eps):
            moved = {n: (np.asarray(v, dtype=np.float64) + eps * w[n] if n in w else v) for n, v in values.items()}
            _, g = self.run("numpy", m, {n: moved[n] for n in arrays}, [moved[u] for u in m.UPSTREAMS], lambda a: a)
            return sum(float(np.sum(v * g[name])) for v, name in zip(directions, m.GRADIENTS))

        h = 1e-6
        numeric = (along(h) - along(-h)) / (2 * h)
        analytic = sum(float(np.sum(products[r] * w[n])) for n, r in wrt.items())
        if not _close(analytic, numeric, GRADIENT_TOLERANCE):
            self.fail(f"{self.name}_hvp", "", f"disagrees with central differences of the backward along a random "
                      f"direction ({analytic:.10g} vs {numeric:.10g})")
        return {"directions": directions, "products": products}

    def check_gradients(self, m, arrays, upstreams, outs, grads):
        fwd = getattr(m, f"{self.name}_forward")
        scalars = dict(self.scalars)
        out_name = m.OUTPUTS[0]
        jacobian = not m.UPSTREAMS

        def output(values):
            """The outputs' values (the first alone for a Jacobian), in OUTPUTS' order."""
            with np.errstate(all="ignore"):
                res = _as_tuple(fwd(*[values[n] for n in m.ARGUMENTS], **scalars), m.RETURNS)
            return [np.asarray(r, dtype=np.float64) for r in res[:len(m.OUTPUTS)]]

        wrt = [t.name for t in self.forward.differentiable]
        for n, g in zip(wrt, m.GRADIENTS):
            got = grads[g]
            want_shape = np.shape(arrays[n])
            if jacobian:
                want_shape = np.shape(outs[out_name]) + want_shape
            if np.shape(got) != want_shape:
                self.fail(f"{self.name}_backward", f"{g} = ...", f"has shape {np.shape(got)}, expected {want_shape}")
            numeric = np.zeros(want_shape)
            for ix in np.ndindex(np.shape(arrays[n])):
                h = 1e-6 * max(1.0, abs(arrays[n][ix]))
                plus = {k: v.copy() for k, v in arrays.items()}
                minus = {k: v.copy() for k, v in arrays.items()}
                plus[n][ix] += h
                minus[n][ix] -= h
                slopes = [(p - q) / (2 * h) for p, q in zip(output(plus), output(minus))]
                if jacobian:
                    numeric[(Ellipsis,) + ix] = slopes[0]
                else:
                    numeric[ix] = sum(np.sum(np.asarray(u) * slope) for u, slope in zip(upstreams, slopes))
            if not _close(got, numeric, GRADIENT_TOLERANCE):
                self.fail(f"{self.name}_backward", f"{g} = ...",
                          f"disagrees with central differences of the forward "
                          f"(max difference {_diff(got, numeric):.2e})")


def _as_float(a):
    """float64, but an index array (labels) stays integers."""
    a = np.asarray(a)
    return a if a.dtype.kind in "iu" else a.astype(np.float64)


def _numpy(a):
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)), initial=0.0))


def _close(a, b, tol) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return False
    return _diff(a, b) <= tol * (1.0 + float(np.max(np.abs(b), initial=0.0)))


def verify(builts, files: dict, prefix: str = "") -> list:
    """Run every module's rendered kernels; returns notes (e.g. torch absent); raises DeriveError."""
    notes = []
    for b in builts:
        notes += Verifier(b, files, prefix).check()
    return list(dict.fromkeys(notes))


def _not_finite_hint(statement, value) -> str:
    """Why a statement's value is not finite on random inputs, as far as its form tells."""
    if statement.rhs.has(MaxOver) and np.isneginf(value).any() and not np.isnan(value).any():
        # A window's maximum with no candidate inside its tensor: the window lies wholly in the padding.
        return ("gives −inf on random float64 inputs: a window lies wholly in the padding at the default "
                "hyper-parameters, so its maximum has no candidate (keep the padding smaller than the window)")
    return ("gives a value that is not finite on random float64 inputs "
            "(declare an input positive=True if the forward needs it > 0)")
