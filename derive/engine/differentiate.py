"""Derivatives in index notation, chained through named intermediates.

``∂X_ij/∂X_pq = δ_ip δ_jq`` comes from SymPy's ``diff`` on ``Indexed``
elements; everything else is the chain rule written with fresh summation
indices and sifted at once::

    d e/d W_pq = ∂e/∂W_pq + Σ_a ∂e/∂M_a · dM_a/dW_pq      for each intermediate M

so intermediates (a mean, a normaliser) stay symbols in the result instead of
being expanded away.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .normal_forms import to_piecewise
from .rewrite import compact, tidy


@dataclass
class Fresh:
    """Fresh index names: ``a, b, c, …`` then ``a1, b1, …`` (never a name already in use)."""

    taken: set
    count: int = 0

    def index(self, dim) -> sp.Idx:
        while True:
            letter = "abcdefgh"[self.count % 8]
            suffix = "" if self.count < 8 else str(self.count // 8)
            self.count += 1
            name = letter + suffix
            if name not in self.taken:
                self.taken.add(name)
                return sp.Idx(name, dim)


def index_names(expr) -> set:
    return {str(i.label) for i in expr.atoms(sp.Idx)}


def bases_in(expr) -> set:
    """Every tensor in ``expr``, indexed or scalar (a scalar intermediate is a bare IndexedBase)."""
    return expr.atoms(sp.IndexedBase)


def diff_wrt(expr, target):
    """∂expr/∂target for an element ``X[p, q]`` or a scalar tensor (SymPy cannot differentiate by an IndexedBase)."""
    if isinstance(target, sp.IndexedBase):
        d = sp.Dummy(str(target.label))
        return sp.diff(expr.xreplace({target: d}), d).xreplace({d: target})
    return sp.diff(expr, target)


@dataclass
class Differentiator:
    """Total derivatives of expressions of one forward pass with respect to one tensor element."""

    forward: object
    wrt: sp.Indexed
    fresh: Fresh
    # name -> (free indices, sifted Jacobian of that intermediate)
    memo: dict = field(default_factory=dict)
    # Steps recorded for intermediates: (lhs Derivative, chained, sifted).
    steps: list = field(default_factory=list)

    def total(self, expr):
        """d expr / d wrt, with every intermediate chained through."""
        expr = to_piecewise(expr)
        result = diff_wrt(expr, self.wrt)
        for d in self.forward.intermediates:
            base = d.tensor.base
            if base not in bases_in(expr):
                continue
            a = tuple(self.fresh.index(i.upper + 1) for i in d.indices)
            inner = self.jacobian(d, a)
            if inner == 0:
                continue
            outer = diff_wrt(expr, base[a] if a else base)
            result += sp.Sum(outer * inner, *[(i, i.lower, i.upper) for i in a]) if a else outer * inner
        return tidy(result, self.forward)

    def jacobian(self, d, indices):
        """dM[indices]/d wrt for the intermediate defined by ``d``."""
        name = d.tensor.name
        if name not in self.memo:
            free = tuple(self.fresh.index(i.upper + 1) for i in d.indices)
            body = d.at(free)
            # Bound indices of the definition must not collide with ours.
            for k in sorted(body.atoms(sp.Idx) - set(free), key=str):
                body = body.xreplace({k: self.fresh.index(k.upper + 1)})
            value = self.total(body)
            self.memo[name] = (free, value)
            lhs = sp.Derivative(d.tensor.base[free] if free else d.tensor.base, self.wrt)
            if value != 0:  # an intermediate that does not depend on wrt says nothing worth reading
                self.steps.append((lhs, body, compact(value)))
        free, value = self.memo[name]
        return value.xreplace(dict(zip(free, indices)))
