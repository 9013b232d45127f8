"""Second order: a module's backward is itself a forward in index notation, derived again.

From a derivation of ``m`` (outputs Y, upstreams dY, gradients dT of its inputs and parameters T), the
second-order forward has

- inputs: every T of ``m`` (inputs stay inputs, parameters stay parameters) and every upstream dY (for a
  single loss, its scalar dL); constants, index arrays and scalars as ``m`` has them;
- lets: ``m``'s own definitions (its outputs among them, which the gradients may read) and the gradients
  of its shared lets;
- outputs: the gradients dT, as derived (for a loss, times dL).

Its vector–Jacobian product with directions vT for the outputs dT is, for each T,
``hT = Σ_S Σ vS ∂dS/∂T``, and for each upstream ``hdY = Σ_S Σ vS ∂dS/∂dY``: PyTorch's double backward
of ``m`` (the gradient of ``Σ_S vS·dS`` with respect to everything dS reads). For a scalar loss L this is
the Hessian–vector product ``(∇²L) v``; for a layer, hT is the directional derivative of every gradient
along v, with the term through dY beside it. The derivation records every step, as for first order.
"""
from __future__ import annotations

import sympy as sp

from .notation import Definition, Forward, Tensor

# Names in the second-order forward: direction of dT, and the product for T.
DIRECTION = "v{}"
PRODUCT = "h{}"
ADJOINT = "{}_bar"


def second_order(derivation) -> Forward:
    """The forward whose outputs are ``derivation``'s gradients (see the module's docstring)."""
    f = derivation.forward
    g = Forward(f.name, f.doc, f.source)
    g.scalars, g.latex, g.lifted, g.assumptions = dict(f.scalars), dict(f.latex), set(f.lifted), list(f.assumptions)
    g.derived, g.gradient_indices = dict(f.derived), f.gradient_indices
    for t in f.arguments:
        g.tensors[t.name] = t
    # The upstreams are inputs now: the gradients are linear in them, and double backward differentiates by them.
    upstreams = list(derivation.upstreams)
    scale = None
    if f.scalar_output and not f.jacobian:
        scale = sp.IndexedBase(f.upstream_name(f.out.tensor.name), real=True)   # dL, a scalar
        upstreams = [scale]
    g.upstream_inputs = tuple(str(b.label) for b in upstreams)
    g.adjoint_lets = tuple(str(a.base.label) for a in derivation.adjoints)
    for base in upstreams:
        name = str(base.label)
        dims = tuple(base.shape) if base.shape else ()
        g.tensors[name] = Tensor(base, dims, "input")
        g.latex.setdefault(name, rf"\mathrm{{d}}{_latex_of(f, name[1:])}")
    for d in f.definitions:
        t = Tensor(d.tensor.base, d.tensor.dims, "intermediate", d.tensor.padding, d.tensor.of)
        g.tensors[t.name] = t
        g.definitions.append(Definition(t, d.indices, d.expr))
    for a in derivation.adjoints:   # computed last let first; each reads those computed before it
        dims = tuple(i.upper + 1 for i in a.indices)
        t = Tensor(a.base, dims, "intermediate")
        g.tensors[t.name] = t
        g.definitions.append(Definition(t, a.indices, a.expr))
    _drop_unread(g, {str(b.label) for grad in derivation.gradients for b in grad.expr.atoms(sp.IndexedBase)})
    ranges = {}   # index name -> the Idx it names among the outputs so far
    taken = {str(i.label) for d in g.definitions for i in d.expr.atoms(sp.Idx) | set(d.indices)}
    taken |= {str(i.label) for grad in derivation.gradients for i in grad.expr.atoms(sp.Idx)}
    for grad in derivation.gradients:
        t = Tensor(grad.base, grad.tensor.dims, "output")
        g.tensors[t.name] = t
        indices = _distinct(grad.indices, ranges, taken)
        expr = grad.expr.xreplace(dict(zip(grad.indices, indices)))
        g.definitions.append(Definition(t, indices, expr * (scale if scale is not None else 1)))
        g.upstream_names[t.name] = DIRECTION.format(grad.tensor.name)
    for name, t in g.tensors.items():
        if t.role in ("input", "param"):
            g.gradient_names[name] = PRODUCT.format(name)
        elif t.role == "intermediate":   # a shared let's gradient here: not d<let>, which may be a first-order name
            g.gradient_names[name] = ADJOINT.format(name)
    return g


def _distinct(indices, ranges: dict, taken: set) -> tuple:
    """``indices`` with each one renamed where an earlier output's index of that name ranges otherwise (dX_pq with p
    over the batch, dgamma_p over the features): the vector–Jacobian product sums every output over its own
    indices in one expression, where one name must be one index."""
    out = []
    for i in indices:
        name = str(i.label)
        if name in ranges and ranges[name] != i:
            n = 1
            while f"{name}{n}" in taken or f"{name}{n}" in ranges:
                n += 1
            i = sp.Idx(f"{name}{n}", i.upper + 1)
            name = str(i.label)
        ranges[name] = i
        out.append(i)
    return tuple(out)


def _drop_unread(g: Forward, read: set) -> None:
    """Keep the lets the gradients read, and those these read: a first-order output no gradient reads (a linear
    map's Y) has nothing to do with the second order."""
    keep = set(read)
    for d in reversed(g.definitions):
        if d.tensor.name in keep:
            keep |= {str(b.label) for b in d.expr.atoms(sp.IndexedBase)}
    for d in [d for d in g.definitions if d.tensor.name not in keep]:
        g.definitions.remove(d)
        del g.tensors[d.tensor.name]


def _latex_of(f, name: str) -> str:
    return f.latex.get(name, name)
