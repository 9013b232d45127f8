"""Every recorded step of every derivation is a true equation.

Each step's right-hand side (and each lemma beside the steps) is evaluated on
explicit small shapes at a random point and compared with brute-force
``sympy.diff`` of the forward expanded element by element. ``∂A/∂B`` is read
as the derivative of ``A``'s definition with the forward's other named
quantities held fixed, ``dA/dX`` as the derivative through all of them.
Nothing of the engine's derivation is used to evaluate a step.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp

from derive import examples, registry
from derive.engine import extents
from derive.engine.derivation import Step, derive
from derive.engine.differentiate import Partial, Total
from derive.engine.ir import AtMax, MaxOver, OnGrid
from derive.engine.verify import normalised_axes
from tests.conftest import USER_MODULES, load_user_forward
from tests.exact import expand_max, explicit, in_range, read, small_sizes

SUBJECTS = ([("registry", n) for n in registry.MODULES] + [("examples", f.name) for f in examples.forwards()]
            + [("user", n) for n in USER_MODULES])


def _forward(kind, name):
    if kind == "registry":
        return registry.load(name)
    if kind == "examples":
        return next(f for f in examples.forwards() if f.name == name)
    return load_user_forward(name)


class Point:
    """A forward on explicit sizes at one random point: held and expanded element values of every tensor."""

    def __init__(self, forward, seed=0):
        self.forward = forward
        self._numbers = None
        self.sizes = small_sizes(forward)
        expanded, _ = explicit(forward, self.sizes)
        rng = np.random.default_rng(seed)
        normalised = normalised_axes(forward)
        self.at = {}   # element symbol -> number
        for t in forward.arguments:
            if t.role == "index":   # labels: fixed integers already (exact.explicit), no symbols to bind
                continue
            shape = extents.shape(t.dims, self.sizes)
            if t.name in normalised:
                axis, total = normalised[t.name]
                a = rng.uniform(0.2, 1.0, shape)
                a = total * a / a.sum(axis=axis, keepdims=True)
            elif t.positive or t.role == "const":
                a = rng.uniform(0.5, 1.5, shape)
            else:
                a = rng.uniform(0.3, 1.2, shape) * rng.choice([-1.0, 1.0], shape)
            for ix, sym in expanded[t.name].items():
                self.at[sym] = sp.Float(float(a[ix]), 30)
        for s in forward.scalars.values():
            self.at[s.symbol] = sp.nsimplify(s.default)
        self.arguments = {t.name: expanded[t.name] for t in forward.arguments}
        # Each defined quantity twice: its own symbols (held fixed under ∂) and its value from the arguments.
        self.held, self.body, self.value = {}, {}, {}
        for d in forward.definitions:
            n = d.tensor.name
            self.value[n] = expanded[n]
            self.held[n] = {ix: sp.Symbol(f"{n}_{'_'.join(map(str, ix))}", real=True) for ix in expanded[n]}
        for d in forward.definitions:
            self.body[d.tensor.name] = {ix: self._expand(d.expr.xreplace(dict(zip(d.indices, map(sp.Integer, ix)))),
                                                         held=True) for ix in self.value[d.tensor.name]}
        self.unheld = {self.held[n][ix]: self.value[n][ix] for n in self.held for ix in self.held[n]}
        self._holding = {}
        self.shared = frozenset()   # the lets with gradients of their own (check_steps sets them)

    def add_upstream(self, base, rng, dims=None):
        """The upstream gradient dY (of the output sized ``dims``, default the first) as one more argument, at a
        random point."""
        shape = extents.shape(self.forward.out.tensor.dims if dims is None else dims, self.sizes)
        name = str(base.label)
        self.arguments[name] = {ix: sp.Symbol(f"{name}_{'_'.join(map(str, ix))}", real=True)
                                for ix in itertools.product(*map(range, shape))}
        for sym in self.arguments[name].values():
            self.at[sym] = sp.Float(rng.uniform(-1, 1), 30)
        return self.arguments[name]

    @staticmethod
    def _name_and_index(e):
        if isinstance(e, sp.IndexedBase):
            return str(e.label), ()
        return str(e.base.label), tuple(int(i) for i in e.indices)

    def _tables(self, held):
        """Element tables: held symbols (True), values in the arguments' symbols (False), or those values as
        numbers at the point ("numbers": a select's condition on a number is decided, where one on a sum of
        selects would make SymPy fold every combination of their branches)."""
        if held == "numbers":
            if self._numbers is None:
                def number(v):   # an index array's entries stay integers: they index other tensors
                    v = sp.sympify(v).xreplace(self.at).doit()
                    return v if v.is_Integer else sp.N(v, 30)

                self._numbers = {n: {ix: number(v) for ix, v in t.items()}
                                 for n, t in {**self.arguments, **self.value}.items()}
            return self._numbers
        return {**self.arguments, **(self.held if held else self.value)}

    def _element(self, e, held):
        """The element's symbol or value; zero off its grid (padding, between strided points)."""
        name = str(e.label) if isinstance(e, sp.IndexedBase) else str(e.base.label)
        table = self._tables(held).get(name)
        if table is None:
            return None
        return table[()] if isinstance(e, sp.IndexedBase) else read(table, e.indices)

    def _expand(self, e, held):
        """``e`` on the explicit sizes: sums written out, elements replaced (defined ones held or expanded)."""
        e = e.xreplace(self.sizes)
        while e.has(sp.Sum):
            e = e.replace(lambda x: isinstance(x, sp.Sum) and not any(isinstance(a, sp.Sum) for a in x.args[1:]),
                          _write_out)
        if e.has(MaxOver):
            e = expand_max(e, self._tables(held))
        scalars = {b: self._element(b, held) for b in e.atoms(sp.IndexedBase)
                   if () in self.arguments.get(str(b.label), self.held.get(str(b.label), {}))}
        e = e.replace(lambda x: isinstance(x, sp.Indexed) and self._element(x, held) is not None,
                      lambda x: self._element(x, held))
        return e.xreplace(scalars)

    def holding(self, names) -> dict:
        """Every defined quantity's value from the arguments, except those in ``names``: held (their symbols)."""
        names = frozenset(names)
        if names not in self._holding:
            values, subs = {}, {}
            for d in self.forward.definitions:
                n = d.tensor.name
                values[n] = dict(self.held[n]) if n in names else {
                    ix: b.xreplace(subs) for ix, b in self.body[n].items()}
                if n not in names:
                    subs.update({self.held[n][ix]: v for ix, v in values[n].items()})
            self._holding[names] = values
        return self._holding[names]

    def _derivative(self, d):
        """The number a shown ∂A/∂B or dA/dB stands for, at integer indices. dA/dB follows every path through
        the forward's named quantities but the shared lets (``self.shared``: their paths are counted through
        their own gradients), and B itself when it is one of them."""
        name, ix = self._name_and_index(d.expr)
        b = d.wrt
        wrt = self._element(b, held=True)
        if isinstance(d, Partial):
            return sp.diff(self.body[name][ix], wrt).xreplace(self.unheld)
        held = (self.shared | {self._name_and_index(b)[0]}) - {name}
        return sp.diff(self.holding(held)[name][ix], wrt).xreplace(self.unheld)

    def evaluate(self, expr, binding: dict):
        """The number ``expr`` stands for with its free indices bound."""
        e = expr.xreplace(binding).xreplace(self.sizes)
        while e.has(sp.Sum):
            e = e.replace(lambda x: isinstance(x, sp.Sum) and not any(isinstance(a, sp.Sum) for a in x.args[1:])
                          and not x.function.has(sp.Sum), _write_out)
        e = e.replace(lambda x: isinstance(x, (Partial, Total)), self._derivative)
        e = e.replace(lambda x: isinstance(x, AtMax), self._at_max)
        e = e.replace(lambda x: isinstance(x, OnGrid),
                      lambda x: sp.S.One if x.args[0].is_Integer and 0 <= x.args[0] < x.args[1] else sp.S.Zero)
        e = self._expand(e, held="numbers")
        return sp.N(e.xreplace(self.at).doit(), 25)

    def _at_max(self, a):
        """``g`` at the first maximiser of ``f`` in row-major order, reads in the padding excluded."""
        best, where = None, None
        for v in itertools.product(*[range(int(k.lower), int(k.upper) + 1) for k in a.over]):
            at = dict(zip(a.over, map(sp.Integer, v)))
            f = a.body.xreplace(at)
            if not in_range(self._tables(False), f):
                continue
            value = sp.N(self._expand(f, held=False).xreplace(self.at), 25)
            if best is None or value > best:
                best, where = value, at
        return a.value.xreplace(where)


def _write_out(s: sp.Sum):
    terms = [s.function]
    for i, lo, hi in s.limits:
        terms = [t.xreplace({i: sp.Integer(k)}) for t in terms for k in range(int(lo), int(hi) + 1)]
    return sp.Add(*terms)


def _bindings(indices, sizes):
    ranges = [range(int(i.lower), int(i.upper.xreplace(sizes)) + 1) for i in indices]
    for values in itertools.product(*ranges):
        yield {i: sp.Integer(v) for i, v in zip(indices, values)}


@pytest.mark.parametrize("kind,name", SUBJECTS, ids=[f"{k}-{n}" for k, n in SUBJECTS])
def test_every_step_and_lemma_is_a_true_equation(kind, name):
    forward = _forward(kind, name)
    check_steps(forward, derive(forward))


def test_a_false_step_is_caught():
    """The check above can fail: a step that drops a term (a factor of 2 lost in sifting) is found."""
    forward = registry.load("batch_norm")
    derivation = derive(forward)
    g = derivation.gradients[0]
    at = next(i for i, s in enumerate(g.steps) if s.reason == "sift the Kronecker deltas")
    g.steps[at] = Step(g.steps[at].reason, g.steps[at].lhs, g.steps[at].rhs * 2)
    with pytest.raises(AssertionError, match="sift the Kronecker deltas"):
        check_steps(forward, derivation)
    lemma_total, body, shown = derivation.lemmas[g.name][0]
    derivation = derive(forward)
    derivation.lemmas[g.name][0] = (lemma_total, body, shown + 1)
    with pytest.raises(AssertionError, match="lemma"):
        check_steps(forward, derivation)


def check_steps(forward, derivation):
    point = Point(forward)
    point.shared = frozenset(a.tensor.name for a in derivation.adjoints)
    out = forward.out.tensor
    # The upstream gradients at a random point too (a loss: dL/dL = 1), one per output.
    rng = np.random.default_rng(1)
    upstreams = [point.add_upstream(u, rng, o.tensor.dims) for u, o in zip(derivation.upstreams, forward.outputs)]

    def objective(values):
        """Σ over the outputs of dY·Y (a loss: L), from ``values`` (point.value, or point.holding(...))."""
        return sum(up.get(ix, 1) * v for o, up in zip(forward.outputs, upstreams or [{}])
                   for ix, v in values[o.tensor.name].items())

    # Brute force: d(Σ dY·Y)/dX, element by element; a shared let's gradient holding that let.
    whole = objective(point.value)
    for a in derivation.adjoints:
        name = a.tensor.name
        held = objective(point.holding({name}))
        table = point.arguments[a.name] = {}
        for ix, sym in point.held[name].items():
            table[ix] = sp.Symbol(f"{a.name}_{'_'.join(map(str, ix))}", real=True)
            point.at[table[ix]] = sp.N(sp.diff(held, sym).xreplace(point.unheld).xreplace(point.at).doit(), 30)
    point._numbers = None
    shared = {a.name for a in derivation.adjoints}
    for g in derivation.adjoints + derivation.gradients:
        adjoint = g.name in shared   # a let's gradient, or a shared output's (its upstream and the later outputs')
        checked = 0
        for binding in _bindings(g.indices, point.sizes):
            lhs = g.lhs.xreplace(binding)
            if forward.jacobian:
                oix = tuple(int(i) for i in lhs.indices[:len(out.dims)])
                target = point.value[out.name][oix]
                wrt = point.arguments[g.tensor.name][tuple(int(i) for i in lhs.indices[len(out.dims):])]
            elif adjoint:
                target = None
                exact = point.at[point.arguments[g.name][tuple(int(i) for i in getattr(lhs, "indices", ()))]]
            else:
                target = whole
                wrt = point.arguments[g.tensor.name][tuple(int(i) for i in lhs.indices)]
            if target is not None:
                exact = sp.N(sp.diff(target, wrt).xreplace(point.at).doit(), 25)
            for step in g.steps:
                got = point.evaluate(step.rhs, binding)
                assert abs(got - exact) <= 1e-12 * (1 + abs(exact)), \
                    f"{forward.name}: {g.name}{list(binding.values())}: step '{step.reason}' gives {got}, not {exact}"
            checked += 1
        assert checked and g.steps
    for lemmas in derivation.lemmas.values():
        for total, _, shown in lemmas:
            free = sorted(total.free_symbols & {i for e in (total.expr, total.wrt) for i in getattr(e, "indices", ())}, key=str)
            for binding in _bindings(free, point.sizes):
                exact = sp.N(point._derivative(total.xreplace(binding).xreplace(point.sizes)).xreplace(point.at), 25)
                got = point.evaluate(shown, binding)
                assert abs(got - exact) <= 1e-12 * (1 + abs(exact)), f"{forward.name}: lemma {total}{binding}: {got}, not {exact}"
