"""Each derived gradient equals brute-force ``sympy.diff`` on small explicit shapes.

The forward is expanded element by element (every tensor element its own
symbol), differentiated by SymPy, and compared with the derived closed form
evaluated at the same element, at random rational points, to 40 digits.
"""
from __future__ import annotations

import random

import pytest
import sympy as sp

from derive import examples, registry
from derive.engine.emit import build
from tests.exact import explicit, small_sizes

SIZES = (2, 3, 2, 3)  # dimension sizes, in order of first appearance


def random_point(symbols, forward, values, rng):
    point = {}
    for s in symbols:
        point[s] = sp.Rational(rng.randint(1, 99), 100) if s.is_positive else sp.Rational(rng.randint(-99, 99), 37)
    # Targets are distributions (the fused module assumes Σ_k T_sk = 1): normalise constant rows.
    for t in forward.arguments:
        if t.role == "const" and len(t.dims) == 2:
            rows = {}
            for ix, sym in values[t.name].items():
                point[sym] = sp.Rational(rng.randint(1, 99), 100)
                rows.setdefault(ix[0], []).append(sym)
            for syms in rows.values():
                total = sum(point[s] for s in syms)
                for s in syms:
                    point[s] = point[s] / total
    return point


EXAMPLES = {f.name: f for f in examples.forwards()}


@pytest.mark.parametrize("name", registry.MODULES)
def test_gradient_equals_brute_force_diff(name, built):
    check_against_brute_force(built(name), name)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_equals_brute_force_diff(name):
    check_against_brute_force(build(EXAMPLES[name]), name)


def check_against_brute_force(b, name):
    forward = b.forward
    sizes = small_sizes(forward, SIZES, most=16)
    values, evaluate = explicit(forward, sizes)
    out = forward.out
    scalars = {s.symbol: sp.Rational(1, 10) for s in forward.scalars.values()}
    if forward.jacobian:
        return check_jacobian(b, values, evaluate)
    if forward.scalar_output:
        objective = values[out.tensor.name][()]
        upstream = {}
    else:   # one upstream per output: the objective is Σ over the outputs of dY·Y
        upstream, objective = {}, 0
        for o, base in zip(forward.outputs, b.derivation.upstreams):
            name_ = str(base.label)
            table = {ix: sp.Symbol(f"{name_}_{'_'.join(map(str, ix))}", real=True) for ix in values[o.tensor.name]}
            values[name_] = table
            upstream.update({(name_, ix): sym for ix, sym in table.items()})
            objective += sum(table[ix] * v for ix, v in values[o.tensor.name].items())
    # The shared lets' gradients, in the order derived (the tensors' gradients read them).
    for a in b.derivation.adjoints:
        values[a.name] = {ix: evaluate(a.expr, dict(zip(a.indices, map(sp.Integer, ix))))
                          for ix in values[a.tensor.name]}
    rng = random.Random(name)
    symbols = sorted(set().union(*[set(v.values()) for k, v in values.items()
                                   if k in {t.name for t in forward.arguments}] + [set(upstream.values())]), key=str)
    for g in b.derivation.gradients:
        for ix in values[g.tensor.name]:
            brute = sp.diff(objective, values[g.tensor.name][ix])
            derived = evaluate(g.expr, dict(zip(g.indices, map(sp.Integer, ix))))
            for _ in range(2):
                point = {**random_point(symbols, forward, values, rng), **scalars}
                a, c = (sp.N(e.xreplace(point), 40) for e in (brute, derived))
                assert abs(a - c) <= 1e-30 * (1 + abs(a)), f"{g.name}{ix}: brute {a} vs derived {c}"


def check_jacobian(b, values, evaluate):
    """∂Y_ij/∂X_mn element by element: the derived rank-4 expression against sp.diff."""
    out = b.forward.out
    for g in b.derivation.gradients:
        for oix, y in values[out.tensor.name].items():
            for xix, x in values[g.tensor.name].items():
                derived = evaluate(g.expr, dict(zip(g.indices, map(sp.Integer, oix + xix))))
                assert sp.simplify(sp.diff(y, x) - derived) == 0, f"{g.name}{oix + xix}"
