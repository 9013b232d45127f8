"""What a kernel may multiply first (derive/engine/magnitudes.py): only what is at most one in magnitude."""
from __future__ import annotations

import pytest
import sympy as sp

from derive.engine.ir import Statement
from derive.engine.magnitudes import at_most_one, inlined, nonnegative, nonpositive

p, q = sp.Idx("p", 3), sp.Idx("q", 4)
A, C, t, u, w = (sp.IndexedBase(n, real=True) for n in ("A", "C", "t", "u", "w"))
x = A[p, q]
S, D = sp.symbols("S D", integer=True, positive=True)   # dimensions, as Forward.dims makes them
VALUES = {"t": sp.Abs(x), "u": sp.exp(-2 * t[p, q]), "w": 1 + sp.exp(x)}

BOUNDED = [sp.exp(-sp.Abs(x)), sp.exp(-t[p, q]), u[p, q], (1 + u[p, q]) ** -2, u[p, q] / (1 + u[p, q]) ** 2,
           sp.tanh(x), 1 / sp.cosh(x) ** 2, sp.Rational(1, 4), -1, sp.erf(x), 1 / w[p, q],
           sp.Piecewise((u[p, q], x < 0), (sp.tanh(x), True)), sp.Abs(sp.sin(x)), 1 / S, (S * D) ** -2,
           u[p, q] / D]
UNBOUNDED = [x, C[p, q], sp.exp(x), sp.exp(t[p, q]), 2, sp.atan(x), (1 + x) ** -2, sp.Abs(x) ** -1,
             sp.Pow(u[p, q], sp.Symbol("k")), sp.nan, sp.oo, sp.zoo, sp.I, w[p, q], u[p, q] * C[p, q],
             sp.Piecewise((u[p, q], x < 0), (x, True)), sp.cosh(x) ** -1 * 3, 2 / D ** 2, S,
             1 / sp.Symbol("k", integer=True), 1 / sp.Symbol("h", positive=True)]


@pytest.mark.parametrize("e", BOUNDED, ids=str)
def test_what_is_at_most_one(e):
    assert at_most_one(sp.sympify(e), VALUES)


@pytest.mark.parametrize("e", UNBOUNDED, ids=str)
def test_what_may_exceed_one_is_never_claimed(e):
    assert not at_most_one(sp.sympify(e), VALUES)


def test_signs():
    assert nonnegative(t[p, q], VALUES) and nonpositive(-2 * t[p, q], VALUES)
    assert not nonnegative(x, VALUES) and not nonpositive(x, VALUES) and not nonpositive(-x, VALUES)
    assert not nonnegative(sp.nan, VALUES) and not nonpositive(sp.nan, VALUES)


def test_a_name_read_in_its_own_definition_proves_nothing_and_ends():
    looped = {"t": sp.exp(-sp.Abs(x)) * t[p, q]}
    assert not at_most_one(t[p, q], looped)


def test_a_saved_value_is_judged_in_the_forwards_own_names():
    """The forward's tmp1 is 1/(1 + e), the backward's another thing: f = e tmp1 is read with the former."""
    e_, tmp1, f = (sp.IndexedBase(n, real=True) for n in ("f_exp", "tmp1", "f"))
    forward = [Statement(e_[p, q], sp.exp(-sp.Abs(x))), Statement(tmp1[p, q], 1 / (1 + e_[p, q])),
               Statement(f[p, q], e_[p, q] * tmp1[p, q])]
    saved = inlined(forward)
    assert saved["f"] == sp.exp(-sp.Abs(x)) / (1 + sp.exp(-sp.Abs(x)))
    assert at_most_one(f[p, q], {"f": saved["f"], "tmp1": C[p, q]})
