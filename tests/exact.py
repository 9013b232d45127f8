"""Exact references: a forward expanded element by element on explicit sizes, evaluated with mpmath.

Every tensor element is its own SymPy symbol; each definition is evaluated
element by element (``Σ`` done, ``Max``/``Min``/``Abs`` read with the engine's
tie conventions); gradients are brute-force ``sympy.diff`` of ``Σ dY·Y`` (or of
the loss, times ``dL``). Nothing of the engine's derivation is used; only
the reading of ``Max``/``Min``/``Abs`` at a tie is the engine's
(``to_piecewise``), and that convention is checked against PyTorch on its
own (tests/test_user_forwards.py, ``TIES``).

``Reference`` evaluates those expressions with mpmath at a precision that is
raised until two evaluations agree, and gives the first-order error bound of a
backward-stable evaluation: ``|r| + Σ_i |x_i ∂r/∂x_i|`` (the condition number
of ``r`` times ``|r|``).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import mpmath
import sympy as sp

from derive.engine import extents
from derive.engine.ir import AtMax, MaxOver, OnGrid
from derive.engine.normal_forms import to_piecewise


def small_sizes(forward, cycle=(2, 3), most=12, integers="exercise") -> dict:
    """Sizes 2, 3, 2, … for the declared dimensions, shrunk until no argument has more than ``most``
    elements (brute force grows fast with them), then ``concrete`` (with ``integers``)."""
    dims = extents.free_dimensions(forward)
    sizes = dict(zip(dims, itertools.cycle(cycle)))

    def count(t):
        return int(math.prod(sizes.get(d, 1) for d in t.dims))

    while forward.arguments and max(map(count, forward.arguments)) > most:
        big = max(forward.arguments, key=count)
        d = max((d for d in big.dims if d in sizes), key=lambda d: (sizes[d], str(d)))
        sizes[d] -= 1
    return concrete(forward, sizes, integers)


def concrete(forward, sizes, integers="exercise"):
    """``sizes`` plus a value for each integer hyper-parameter and each derived extent (a convolution's Ho).

    ``integers``: "exercise" takes stride 2, padding 1 (every integer ≥ 1 is 2, every one ≥ 0 is 1), so
    dilation and padding are checked; "defaults" takes the module's defaults. Declared dimensions grow
    until every derived extent is at least 1.
    """
    out = dict(sizes)
    for s in forward.scalars.values():
        if s.symbol.is_integer:
            out[s.symbol] = s.default if integers == "defaults" else (2 if s.symbol.is_positive else 1)
    derived = extents.solve(forward)
    # Axes sized by an expression (D − 1, L − K + 1) must be at least 1 too.
    axes = extents.expression_axes(forward)
    for _ in range(20):
        values = {d: int(f.xreplace(out)) for d, f in derived.items()}
        if all(v >= 1 for v in values.values()) and all(int(a.xreplace({**out, **values})) >= 1 for a in axes):
            return {**out, **values}
        for f in [*derived.values(), *axes]:
            for d in sorted(f.free_symbols & set(sizes), key=str):
                if f.xreplace({**out, d: out[d] + 1}) > f.xreplace(out):  # a dimension that widens the output
                    out[d] += 1
    raise ValueError(f"{forward.name}: no sizes give every derived extent at least 1")


def on_grid(table: dict, indices) -> bool:
    return all(sp.sympify(i).is_Integer for i in indices) and tuple(int(i) for i in indices) in table


def read(table: dict, indices):
    """A tensor element at explicit indices: zero off the grid (outside the range, or not an integer)."""
    return table[tuple(int(i) for i in indices)] if on_grid(table, indices) else sp.S.Zero


def in_range(tables: dict, expr) -> bool:
    """True when every read of a known tensor in ``expr`` (at explicit indices) lands on its grid."""
    return all(on_grid(tables[str(x.base.label)], x.indices) for x in expr.atoms(sp.Indexed)
               if str(x.base.label) in tables)


def _first_max(at, f, value):
    """Piecewise: ``value(b)`` at the first b of ``at`` (row-major order) where ``f(b)`` is largest (PyTorch's ties)."""
    fs = [f(b) for b in at]
    branches = []
    for n, b in enumerate(at):
        wins = [fs[n] > fs[m] for m in range(n)] + [fs[n] >= fs[m] for m in range(n + 1, len(at))]
        branches.append((value(b), sp.And(*wins)))
    return sp.Piecewise(*branches[:-1], (branches[-1][0], True))


def _candidates(over, body, tables):
    """Bindings of the window indices whose reads land inside their tensors (padding is no candidate)."""
    ranges = [range(int(k.lower), int(k.upper) + 1) for k in over]
    at = [dict(zip(over, map(sp.Integer, v))) for v in itertools.product(*ranges)]
    return [b for b in at if in_range(tables, body.xreplace(b))]


def expand_max(expr, tables: dict):
    """``max_{k…} body`` at explicit indices; the derivative goes to the first maximum, reads in the padding never win."""
    def expand(m):
        at = _candidates(m.over, m.body, tables)
        return _first_max(at, m.body.xreplace, m.body.xreplace)

    return expr.replace(lambda x: isinstance(x, MaxOver), expand)


def expand_at_max(expr, tables: dict):
    """``AtMax(g, f, k…)`` at explicit indices: g at the first maximiser of f in row-major order."""
    def expand(a):
        at = _candidates(a.over, a.body, tables)
        return _first_max(at, a.body.xreplace, a.value.xreplace)

    return expr.replace(lambda x: isinstance(x, AtMax), expand)


def labels(t, sizes) -> dict:
    """A fixed pattern of valid values for the index array ``t`` (labels): {index: integer in 0..of−1}."""
    shape = extents.shape(t.dims, sizes)
    n = int(sp.sympify(t.of).xreplace(sizes))
    return {ix: (3 * m + 1) % n for m, ix in enumerate(itertools.product(*map(range, shape)))}


def explicit(forward, sizes):
    """(element symbols and values of every tensor by name, evaluate): the forward on explicit sizes
    (``concrete`` sizes when the forward has integer hyper-parameters or derived extents)."""
    values = {}
    for t in forward.arguments:
        if t.role == "index":   # labels: fixed integers, read as indices (X[s, y_s] reads X at them)
            values[t.name] = {ix: sp.Integer(v) for ix, v in labels(t, sizes).items()}
            continue
        shape = extents.shape(t.dims, sizes)
        positive = {"positive": True} if t.positive else {"real": True}
        values[t.name] = {ix: sp.Symbol(f"{t.name}_{'_'.join(map(str, ix))}", **positive)
                          for ix in itertools.product(*map(range, shape))}

    def evaluate(expr, binding):
        e = to_piecewise(expr.xreplace(binding)).xreplace(sizes)
        e = e.replace(lambda x: isinstance(x, sp.Sum), lambda x: x.doit())
        if e.has(MaxOver):
            e = expand_max(e, values)
        if e.has(AtMax):
            e = expand_at_max(e, values)
        e = e.replace(lambda x: isinstance(x, OnGrid),
                      lambda x: sp.S.One if x.args[0].is_Integer and 0 <= x.args[0] < x.args[1] else sp.S.Zero)
        # Keyed by name: substituting sizes also rewrites each IndexedBase's shape.
        e = e.replace(lambda x: isinstance(x, sp.Indexed) and str(x.base.label) in values,
                      lambda x: read(values[str(x.base.label)], x.indices))
        scalars = {b: values[str(b.label)][()] for b in e.atoms(sp.IndexedBase)
                   if () in values.get(str(b.label), {})}
        return e.xreplace(scalars)

    for d in forward.definitions:
        shape = list(extents.shape([i.upper + 1 for i in d.indices], sizes))
        values[d.tensor.name] = {ix: evaluate(d.expr, dict(zip(d.indices, map(sp.Integer, ix))))
                                 for ix in itertools.product(*map(range, shape))}
    return values, evaluate


@dataclass
class Problem:
    """The exact results of one module on explicit sizes: output and gradient elements, as expressions."""

    symbols: list            # every input symbol (arguments, upstream, scalars)
    results: dict            # (name, index) -> exact expression
    arguments: dict          # name -> {index: symbol}
    upstream: dict           # (output, index) -> symbol, one per element of every output (a loss: {(L, ()): dL})
    scalars: dict            # name -> symbol
    directions: dict = None  # second order: (gradient, index) -> symbol of the direction v along that gradient


def problem(forward, sizes, order: int = 1) -> Problem:
    """The exact outputs and gradients (``order`` 1), or the second order alone (``order`` 2): for each
    differentiable T and each upstream dY, ``hT = ∂/∂T Σ_S Σ v_S dS``, the derivative of the gradients along
    directions v (one symbol per gradient element), what a module's ``_hvp`` computes."""
    values, _ = explicit(forward, sizes)
    out = forward.out.tensor.name
    outputs = [o.tensor.name for o in forward.outputs]
    scalars = {s.name: s.symbol for s in forward.scalars.values()}
    upstream = {(o, ix): sp.Symbol(f"d{o}_{'_'.join(map(str, ix))}" if ix else f"d{o}", real=True)
                for o in outputs for ix in values[o]}
    objective = sum(sym * values[o][ix] for (o, ix), sym in upstream.items())
    results = {(o, ix): v for o in outputs for ix, v in values[o].items()}
    for t in forward.differentiable:
        for ix, sym in values[t.name].items():
            if forward.jacobian:  # every ∂Y_i/∂X_j, at index i + j
                for oix, v in values[out].items():
                    results[(f"d{out}_d{t.name}", oix + ix)] = sp.diff(v, sym)
            else:
                results[(f"d{t.name}", ix)] = sp.diff(objective, sym)
    arguments = {t.name: values[t.name] for t in forward.arguments if t.role != "index"}
    symbols = [s for t in forward.arguments if t.role != "index" for s in values[t.name].values()]
    symbols += list(upstream.values()) + list(scalars.values())
    if order == 1:
        return Problem(symbols, results, arguments, upstream, scalars)
    assert not forward.jacobian, "a Jacobian module has no second order"
    directions = {(f"d{t.name}", ix): sp.Symbol(f"v{t.name}_{'_'.join(map(str, ix))}", real=True)
                  for t in forward.differentiable for ix in values[t.name]}
    along = sum(v * results[key] for key, v in directions.items())
    second = {(f"h{t.name}", ix): sp.diff(along, sym) for t in forward.differentiable
              for ix, sym in values[t.name].items()}
    second.update({(f"hd{o}", ix): sp.diff(along, sym) for (o, ix), sym in upstream.items()})
    # |x|'' = 2δ(x): zero wherever it is judged (off the kink, where the derivative exists), and mpmath has no δ.
    second = {k: v.replace(sp.DiracDelta, lambda *args: sp.S.Zero) for k, v in second.items()}
    return Problem(symbols + list(directions.values()), second, arguments, upstream, scalars, directions)


class Reference:
    """mpmath evaluation of a Problem's results, each with the first-order error bound of a stable evaluation."""

    def __init__(self, prob: Problem):
        self.prob = prob
        self.keys = list(prob.results)
        self.value = sp.lambdify(prob.symbols, [prob.results[k] for k in self.keys], modules="mpmath", cse=True)
        self.each = None

    def _eval(self, point: list, digits: int):
        """The values at ``digits``; None for all where the evaluation divides by an exact zero (a
        cancellation that precision has not resolved yet: 1 − 1/(1 + e^{−x}) at x = 1e300)."""
        with mpmath.workdps(digits):
            try:
                return [_number(v) for v in self.value(*point)]
            except ZeroDivisionError:
                pass
            if self.each is None:  # one function per value, so one exact zero spoils only its own
                self.each = [sp.lambdify(self.prob.symbols, self.prob.results[k], modules="mpmath")
                             for k in self.keys]
            out = []
            for f in self.each:
                try:
                    out.append(_number(f(*point)))
                except ZeroDivisionError:
                    out.append(None)
            return out

    def evaluate(self, point: dict, digits: int = 40, most: int = 3000) -> dict:
        """{key: (exact value, |r| + Σ_i |x_i ∂r/∂x_i|)}; the precision is raised until two evaluations agree.

        A value that has not settled at ``most`` digits is NaN: no reference, nothing judged (the loss
        of a sigmoid written as ``log(1 − σ(x))`` at x = 1e300 needs 1e300 digits).
        The partial derivatives are central differences at that precision (a kink inside the step makes
        the bound huge: at a kink only finiteness is judged)."""
        x = [point_value(point[s]) for s in self.prob.symbols]
        # Cancellation at the scale of the inputs (e^x − 1 at x = 1e-213, (1 + x) − x at 1e300) needs that many
        # digits before any agreement means something; then agreement with a much higher precision
        # (1 − tanh²(100) is 0 at 40 and at 80 digits alike).
        digits += min(1000, max([abs(int(mpmath.log10(abs(v)))) for v in x if v != 0] + [0]))
        a = self._eval(x, digits)
        settled = [None] * len(self.keys)
        while True:
            b = self._eval(x, 2 * digits + 50)
            for n, (u, v) in enumerate(zip(a, b)):
                if settled[n] is None and u is not None and v is not None and _agree(u, v):
                    settled[n] = (v, digits)
            if all(v is not None for v in settled) or 2 * digits + 50 > most:
                break
            a, digits = b, 2 * digits + 50
        b = [v[0] if v is not None else mpmath.nan for v in settled]
        # The bounds at the highest precision any value needed. Only their order of magnitude matters:
        # differences with a step that leaves a third of the digits to rounding and a third to truncation.
        digits = max([v[1] for v in settled if v is not None] + [40])
        bounds = [abs(v) for v in b]
        with mpmath.workdps(digits):
            for i, xi in enumerate(x):
                if xi == 0:
                    continue
                h = abs(xi) * mpmath.mpf(10) ** (-(digits // 3))
                up = self._eval(x[:i] + [xi + h] + x[i + 1:], digits)
                down = self._eval(x[:i] + [xi - h] + x[i + 1:], digits)
                for n in range(len(bounds)):
                    if up[n] is None or down[n] is None:
                        bounds[n] = mpmath.inf
                    else:
                        bounds[n] += abs(xi * (up[n] - down[n]) / (2 * h))
        return {k: (b[n], bounds[n]) for n, k in enumerate(self.keys)}


def _number(v):
    return mpmath.mpf(v) if not isinstance(v, mpmath.mpc) else v


def point_value(v):
    return mpmath.mpf(float(v)) if not isinstance(v, mpmath.mpf) else v


def _agree(x, y) -> bool:
    if isinstance(x, mpmath.mpc) or isinstance(y, mpmath.mpc):
        return x == y
    if mpmath.isnan(x) or mpmath.isnan(y):
        return mpmath.isnan(x) and mpmath.isnan(y)
    if mpmath.isinf(x) or mpmath.isinf(y):
        # log(1 − σ(x)) is log(0) until the precision resolves 1 − σ(x): an infinity is never settled.
        return False
    # Below 1e-350 (far under float64's smallest subnormal) a difference cannot change a judged value; an
    # exact 0 reached by cancellation is noise at every precision, and would otherwise never agree.
    return abs(x - y) <= mpmath.mpf(10) ** -25 * max(abs(x), abs(y)) + mpmath.mpf(10) ** -350
