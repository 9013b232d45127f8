"""Rewrites that fix a meaning before differentiating.

SymPy differentiates ``Max(0, x)`` to ``Heaviside(x)``, which is 1/2 at 0;
PyTorch's ReLU gradient is 0 there. Writing Max, Min and Heaviside as
``Piecewise`` with a strict inequality makes the tie take the constant branch,
so the derivative at the tie is 0, like PyTorch's.
"""
from __future__ import annotations

import sympy as sp


def _variable_first(a, b):
    """Order two operands so the more variable one (a tensor, then any non-number) comes first."""
    rank = lambda e: (e.has(sp.Indexed), not e.is_number)
    return (b, a) if rank(b) > rank(a) else (a, b)


def _max_to_piecewise(m):
    a, b = _variable_first(m.args[0], sp.Max(*m.args[1:]) if len(m.args) > 2 else m.args[1])
    return sp.Piecewise((a, sp.StrictGreaterThan(a, b)), (b, True))


def _min_to_piecewise(m):
    a, b = _variable_first(m.args[0], sp.Min(*m.args[1:]) if len(m.args) > 2 else m.args[1])
    return sp.Piecewise((a, sp.StrictLessThan(a, b)), (b, True))


def _heaviside_to_piecewise(h):
    return sp.Piecewise((sp.S.One, sp.StrictGreaterThan(h.args[0], 0)), (sp.S.Zero, True))


def to_piecewise(expr):
    """Max, Min and Heaviside as Piecewise with the tie on the constant branch."""
    if not expr.has(sp.Max, sp.Min, sp.Heaviside):
        return expr
    expr = expr.replace(lambda e: isinstance(e, sp.Max), _max_to_piecewise)
    expr = expr.replace(lambda e: isinstance(e, sp.Min), _min_to_piecewise)
    return expr.replace(lambda e: isinstance(e, sp.Heaviside), _heaviside_to_piecewise)
