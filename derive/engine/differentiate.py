"""Derivatives in index notation, chained through named intermediates.

``∂X_ij/∂X_pq = δ_ip δ_jq`` comes from SymPy's ``diff`` on ``Indexed``
elements; everything else is the chain rule written with fresh summation
indices::

    d e/d W_pq = ∂e/∂W_pq + Σ_a ∂e/∂M_a · dM_a/dW_pq      for each intermediate M

so intermediates (a mean, a normaliser) stay symbols in the result instead of
being expanded away. Nothing here sifts, folds or simplifies: those are later
stages of the derivation, each recorded as its own step.

``Partial`` and ``Total`` are the two derivatives the derivation shows before
they are evaluated: ``∂e/∂M`` holds the forward's other named quantities fixed,
``de/dX`` follows every path through them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .ir import Sum, element, extent
from .normal_forms import clean_piecewise, to_piecewise


class _ShownDerivative(sp.Expr):
    """An unevaluated derivative of ``expr`` by ``wrt`` (display only; never printed as code)."""

    symbol = "d"

    def __new__(cls, expr, wrt):
        return sp.Expr.__new__(cls, sp.sympify(expr), wrt)

    @property
    def expr(self):
        return self.args[0]

    @property
    def wrt(self):
        return self.args[1]

    def _latex(self, printer):
        d = r"\partial" if self.symbol == "∂" else r"\mathrm{d}"
        return rf"\frac{{{d} {printer._print(self.expr)}}}{{{d} {printer._print(self.wrt)}}}"

    def _index_text(self, printer):
        return f"{self.symbol}{printer._print(self.expr)}/{self.symbol}{printer._print(self.wrt)}"


class Partial(_ShownDerivative):
    """∂e/∂M: the other named quantities of the forward held fixed."""

    symbol = "∂"


class Total(_ShownDerivative):
    """de/dX: through every named intermediate that depends on X."""

    symbol = "d"


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


def diff_wrt(expr, target):
    """∂expr/∂target for an element ``X[p, q]`` or a scalar tensor (SymPy cannot differentiate by an IndexedBase)."""
    expr = to_piecewise(expr)
    if isinstance(target, sp.IndexedBase):
        d = sp.Dummy(str(target.label))
        out = sp.diff(expr.xreplace({target: d}), d).xreplace({d: target})
    else:
        out = sp.diff(expr, target)
    # Σ_m 0 from differentiating a sum of terms free of the target is 0.
    out = out.replace(lambda e: isinstance(e, sp.Sum) and e.function == 0, lambda e: sp.S.Zero)
    return clean_piecewise(out)


def depends_on(forward, name: str, target, opaque=frozenset()) -> bool:
    """True if the definition of ``name`` reaches the tensor ``target`` (an IndexedBase), through no let in
    ``opaque`` (those held fixed) other than ``name`` itself."""
    defs = {d.tensor.name: d for d in forward.definitions}
    seen, todo = set(), [name]
    while todo:
        n = todo.pop()
        if n in seen or n not in defs or (n in opaque and n != name):
            continue
        seen.add(n)
        bases = defs[n].expr.atoms(sp.IndexedBase)
        if target in bases:
            return True
        todo += [str(b.label) for b in bases]
    return False


@dataclass
class Differentiator:
    """Total derivatives of expressions of one forward pass with respect to one tensor element."""

    forward: object
    wrt: sp.Indexed
    fresh: Fresh
    # name -> (free indices, Jacobian of that intermediate, unsifted)
    memo: dict = field(default_factory=dict)
    # Intermediates whose Jacobians were used, in order: [(Total(M, wrt), body, value)].
    lemmas: list = field(default_factory=list)
    # Lets held fixed (their paths are counted through their own gradients): never chained through.
    opaque: frozenset = frozenset()

    @property
    def target(self):
        return self.wrt.base if isinstance(self.wrt, sp.Indexed) else self.wrt

    def chained(self, expr) -> list:
        """The intermediates ``expr`` refers to that depend on the target."""
        bases = expr.atoms(sp.IndexedBase)
        return [d for d in self.forward.intermediates if d.tensor.base in bases and d.tensor.name not in self.opaque
                and depends_on(self.forward, d.tensor.name, self.target, self.opaque)]

    def total(self, expr):
        """d expr / d wrt, with every intermediate chained through."""
        result = diff_wrt(expr, self.wrt)
        for d in self.chained(expr):
            a = tuple(self.fresh.index(extent(i)) for i in d.indices)
            inner = self.jacobian(d, a)
            outer = diff_wrt(expr, element(d.tensor.base, a))
            if outer == 0:
                continue
            result += Sum(outer * inner, *[(i, i.lower, i.upper) for i in a]) if a else outer * inner
        return result

    def jacobian(self, d, indices):
        """dM[indices]/d wrt for the intermediate defined by ``d``."""
        name = d.tensor.name
        if name not in self.memo:
            free = tuple(self.fresh.index(extent(i)) for i in d.indices)
            body = d.at(free)
            # Bound indices of the definition must not collide with ours.
            for k in sorted(body.atoms(sp.Idx) - set(free), key=str):
                body = body.xreplace({k: self.fresh.index(extent(k))})
            value = self.total(body)
            self.memo[name] = (free, value)
            self.lemmas.append((Total(element(d.tensor.base, free), self.wrt), body, value))
        free, value = self.memo[name]
        return value.xreplace(dict(zip(free, indices)))
