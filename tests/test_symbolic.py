"""Each derived gradient equals brute-force ``sympy.diff`` on small explicit shapes.

The forward is expanded element by element (every tensor element its own
symbol), differentiated by SymPy, and compared with the derived closed form
evaluated at the same element, at random rational points, to 40 digits.
"""
from __future__ import annotations

import itertools
import random

import pytest
import sympy as sp

from derive import examples, registry
from derive.engine.emit import build

SIZES = (2, 3, 2, 3)  # dimension sizes, in order of first appearance


def explicit(forward, sizes):
    """Element symbols for the arguments; values of every definition, element by element."""
    values = {}
    for t in forward.arguments:
        shape = [sizes[d] for d in t.dims]
        positive = {"positive": True} if t.positive else {"real": True}
        values[t.name] = {ix: sp.Symbol(f"{t.name}_{'_'.join(map(str, ix))}", **positive)
                          for ix in itertools.product(*map(range, shape))}

    def evaluate(expr, binding):
        e = expr.xreplace(binding).xreplace(sizes)
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
    dims = sorted({d for t in forward.tensors.values() for d in t.dims if isinstance(d, sp.Symbol)}, key=str)
    sizes = dict(zip(dims, SIZES))
    values, evaluate = explicit(forward, sizes)
    out = forward.out
    scalars = {s.symbol: sp.Rational(1, 10) for s in forward.scalars.values()}
    if forward.jacobian:
        return check_jacobian(b, values, evaluate)
    if forward.scalar_output:
        objective = values[out.tensor.name][()]
        upstream = {}
    else:
        upstream = {ix: sp.Symbol(f"dY_{'_'.join(map(str, ix))}", real=True) for ix in values[out.tensor.name]}
        values[str(b.derivation.upstream.label)] = upstream
        objective = sum(upstream[ix] * v for ix, v in values[out.tensor.name].items())
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
