"""Exact references: a forward expanded element by element on explicit sizes, evaluated with mpmath.

Every tensor element is its own SymPy symbol; each definition is evaluated
element by element (``Σ`` done, ``Max``/``Min``/``Abs`` read with the engine's
tie conventions); gradients are brute-force ``sympy.diff`` of ``Σ dY·Y`` (or of
the loss, times ``dL``). Nothing of the engine's derivation is used.

``Reference`` evaluates those expressions with mpmath at a precision that is
raised until two evaluations agree, and gives the first-order error bound of a
backward-stable evaluation: ``|r| + Σ_i |x_i ∂r/∂x_i|`` (the condition number
of ``r`` times ``|r|``).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import mpmath
import sympy as sp

from derive.engine.normal_forms import to_piecewise


def explicit(forward, sizes):
    """(element symbols and values of every tensor by name, evaluate): the forward on explicit sizes."""
    values = {}
    for t in forward.arguments:
        shape = [sizes[d] if d in sizes else int(d) for d in t.dims]
        positive = {"positive": True} if t.positive else {"real": True}
        values[t.name] = {ix: sp.Symbol(f"{t.name}_{'_'.join(map(str, ix))}", **positive)
                          for ix in itertools.product(*map(range, shape))}

    def evaluate(expr, binding):
        e = to_piecewise(expr.xreplace(binding)).xreplace(sizes)
        e = e.replace(lambda x: isinstance(x, sp.Sum), lambda x: x.doit())
        # Keyed by name: substituting sizes also rewrites each IndexedBase's shape.
        e = e.replace(lambda x: isinstance(x, sp.Indexed) and str(x.base.label) in values,
                      lambda x: values[str(x.base.label)][tuple(int(i) for i in x.indices)])
        scalars = {b: values[str(b.label)][()] for b in e.atoms(sp.IndexedBase)
                   if () in values.get(str(b.label), {})}
        return e.xreplace(scalars)

    for d in forward.definitions:
        shape = [sizes[i.upper + 1] if i.upper + 1 in sizes else int(i.upper + 1) for i in d.indices]
        values[d.tensor.name] = {ix: evaluate(d.expr, dict(zip(d.indices, map(sp.Integer, ix))))
                                 for ix in itertools.product(*map(range, shape))}
    return values, evaluate


@dataclass
class Problem:
    """The exact results of one module on explicit sizes: output and gradient elements, as expressions."""

    symbols: list            # every input symbol (arguments, upstream, scalars)
    results: dict            # (name, index) -> exact expression
    arguments: dict          # name -> {index: symbol}
    upstream: dict           # index -> symbol (a loss: {(): dL})
    scalars: dict            # name -> symbol


def problem(forward, sizes) -> Problem:
    values, _ = explicit(forward, sizes)
    out = forward.out.tensor.name
    scalars = {s.name: s.symbol for s in forward.scalars.values()}
    if forward.scalar_output:
        dL = sp.Symbol(f"d{out}", real=True)
        upstream = {(): dL}
        objective = dL * values[out][()]
    else:
        upstream = {ix: sp.Symbol(f"d{out}_{'_'.join(map(str, ix))}", real=True) for ix in values[out]}
        objective = sum(upstream[ix] * v for ix, v in values[out].items())
    results = {(out, ix): v for ix, v in values[out].items()}
    for t in forward.differentiable:
        for ix, sym in values[t.name].items():
            results[(f"d{t.name}", ix)] = sp.diff(objective, sym)
    arguments = {t.name: values[t.name] for t in forward.arguments}
    symbols = [s for t in forward.arguments for s in values[t.name].values()]
    symbols += list(upstream.values()) + list(scalars.values())
    return Problem(symbols, results, arguments, upstream, scalars)


class Reference:
    """mpmath evaluation of a Problem's results, with the error bound of each."""

    def __init__(self, prob: Problem, with_condition: bool = True):
        self.prob = prob
        self.keys = list(prob.results)
        exprs = [prob.results[k] for k in self.keys]
        self.value = sp.lambdify(prob.symbols, exprs, modules="mpmath")
        self.partials = None
        if with_condition:
            self.partials = [sp.lambdify(prob.symbols, [sp.diff(e, s) for s in prob.symbols], modules="mpmath")
                             for e in exprs]

    def _eval(self, fn, point, digits):
        with mpmath.workdps(digits):
            args = [mpmath.mpf(float(point[s])) if not isinstance(point[s], mpmath.mpf) else point[s]
                    for s in self.prob.symbols]
            return [mpmath.mpf(v) if not isinstance(v, mpmath.mpc) else v for v in fn(*args)]

    def evaluate(self, point: dict, digits: int = 40):
        """{key: (exact value, |r| + Σ|x ∂r/∂x|)}; precision raised until two evaluations agree."""
        for _ in range(6):
            a = self._eval(self.value, point, digits)
            b = self._eval(self.value, point, 2 * digits)
            if all(_agree(x, y) for x, y in zip(a, b)):
                break
            digits *= 2
        out = {}
        for n, k in enumerate(self.keys):
            bound = abs(b[n])
            if self.partials is not None:
                parts = self._eval(self.partials[n], point, 2 * digits)
                bound += sum(abs(p * point_value(point[s])) for p, s in zip(parts, self.prob.symbols))
            out[k] = (b[n], bound)
        return out


def point_value(v):
    return mpmath.mpf(float(v)) if not isinstance(v, mpmath.mpf) else v


def _agree(x, y) -> bool:
    if isinstance(x, mpmath.mpc) or isinstance(y, mpmath.mpc):
        return x == y
    if mpmath.isnan(x) or mpmath.isnan(y):
        return mpmath.isnan(x) and mpmath.isnan(y)
    if mpmath.isinf(x) or mpmath.isinf(y):
        return x == y
    return abs(x - y) <= mpmath.mpf(10) ** -25 * max(abs(x), abs(y), mpmath.mpf(10) ** -300000)
