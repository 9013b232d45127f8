"""From a forward pass to its gradients, every rule application recorded.

For each differentiable tensor ``X`` the vector–Jacobian product with the
upstream gradient ``dY`` is formed in index notation,

    dX_pq = Σ_{s,n} dY_sn ∂Y_sn/∂X_pq        (a scalar output L has no dY),

differentiated (deltas appear), sifted, folded back into the forward's named
quantities, re-expressed in saved outputs where that is simpler, and
compacted. Each stage that changes the expression is a ``Step``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .checks import check_derivative, check_forward
from .differentiate import Differentiator, Fresh, diff_wrt, index_names
from .normal_forms import to_piecewise
from .rewrite import (apply_assumptions, compact, fold, reexpress, reexpress_intermediates, simplify_elementwise,
                      tidy)
from .sifting import sift

# Free indices of a gradient, in order of preference.
GRADIENT_INDEX_NAMES = "pqruvwxyz"


@dataclass(frozen=True)
class Step:
    """One stage of a derivation: ``lhs = rhs`` with a short reason."""

    reason: str
    lhs: sp.Expr
    rhs: sp.Expr


@dataclass
class Gradient:
    """The derived gradient of the output with respect to one tensor."""

    tensor: object            # notation.Tensor
    base: sp.IndexedBase      # dX
    indices: tuple            # free indices p, q
    expr: sp.Expr             # closed form, in index notation
    steps: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.base.label)

    @property
    def lhs(self):
        return self.base[self.indices] if self.indices else self.base


@dataclass
class Derivation:
    forward: object
    upstream: sp.IndexedBase | None   # dY, or None for a scalar loss
    gradients: list
    # Jacobians of intermediates, per gradient name: [(lhs, definition, value)].
    lemmas: dict = field(default_factory=dict)


def gradient_name(tensor_name: str) -> str:
    return "d" + tensor_name


def _free_indices(forward, tensor):
    taken = set().union(*[index_names(d.expr) | {str(i.label) for i in d.indices} for d in forward.definitions])
    names = [n for n in (forward.gradient_indices or GRADIENT_INDEX_NAMES) if n not in taken]
    return tuple(sp.Idx(n, dim) for n, dim in zip(names, tensor.dims))


def derive(forward) -> Derivation:
    if not forward.definitions:
        raise ValueError(f"{forward.name}: the forward defines no output")
    check_forward(forward)
    out = forward.out
    upstream = None if forward.scalar_output or forward.jacobian else sp.IndexedBase(
        gradient_name(out.tensor.name), shape=out.tensor.dims, real=True)
    gradients, lemmas = [], {}
    for t in forward.differentiable:
        g, steps_of_lemmas = _derive_one(forward, t, upstream)
        check_derivative(forward, g)
        gradients.append(g)
        lemmas[g.name] = steps_of_lemmas
    return Derivation(forward, upstream, gradients, lemmas)


def _compact_if_changed(old, new):
    return new if new == old else compact(new)


def _derive_one(forward, t, upstream):
    out = forward.out
    free = _free_indices(forward, t)
    wrt = t.base[free] if free else t.base
    limits = [(i, i.lower, i.upper) for i in out.indices]
    y = out.lhs
    if forward.jacobian:  # ∂Y_ij/∂X_mn: all of the output's indices stay free
        grad = sp.IndexedBase(f"d{out.tensor.name}_d{t.name}", shape=out.tensor.dims + t.dims, real=True)
        lhs, shown_lhs = grad[out.indices + free], sp.Derivative(y, wrt)
    else:
        grad = sp.IndexedBase(gradient_name(t.name), shape=t.dims, real=True)
        lhs = shown_lhs = grad[free] if free else grad

    def vjp(inner):
        if upstream is None:
            return inner
        return sp.Sum(upstream[out.indices] * inner, *limits)

    taken = index_names(sp.Tuple(*[d.expr for d in forward.definitions])) | {str(i.label) for i in free}
    taken |= {str(i.label) for d in forward.definitions for i in d.indices}
    diff = Differentiator(forward, wrt, Fresh(taken))
    steps = [] if forward.jacobian else [Step("vector-Jacobian product", lhs, vjp(sp.Derivative(y, wrt)))]

    body = to_piecewise(out.expr)
    # Σ_m 0 from differentiating a sum of terms free of X is 0 (display only).
    partial = diff_wrt(body, wrt).replace(lambda e: isinstance(e, sp.Sum) and e.function == 0, lambda e: sp.S.Zero)
    chained = [d for d in forward.intermediates if d.tensor.base in {e.base for e in body.atoms(sp.Indexed)}]
    if chained:
        def link(d):
            term = sp.Derivative(y, d.lhs) * sp.Derivative(d.lhs, wrt)
            bound = [i for i in d.indices if i not in out.indices]
            return sp.Sum(term, *[(i, i.lower, i.upper) for i in bound]) if bound else term
        shown = partial + sum((link(d) for d in chained), sp.S.Zero)
        steps.append(Step("chain rule through the intermediates", shown_lhs, vjp(shown)))
    else:
        steps.append(Step("differentiate", shown_lhs, vjp(partial)))

    jac = diff.total(body)
    sifted = sift(vjp(jac))
    steps.append(Step("sift the Kronecker deltas", shown_lhs, sifted))

    expr = sifted
    for reason, rule in (
        ("fold the forward's definitions back in", lambda e: fold(e, forward)),
        ("use the module's assumptions", lambda e: apply_assumptions(e, forward)),
        ("write in the forward's saved quantities", lambda e: _compact_if_changed(e, reexpress(e, forward, t.base))),
        ("write in the forward's outputs", lambda e: reexpress_intermediates(e, forward)),
        ("normal form of sums", lambda e: tidy(e, forward)),
        ("simplify the elementwise expression", simplify_elementwise),
        ("collect into a compact form", compact),
    ):
        new = rule(expr)
        if new != expr:
            steps.append(Step(reason, shown_lhs, new))
            expr = new
    indices = out.indices + free if forward.jacobian else free
    return Gradient(t, grad, indices, expr, steps), list(diff.steps)
