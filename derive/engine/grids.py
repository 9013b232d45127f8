"""Rules for reads at index expressions (convolutions, pooling, shifts).

- ``absorb``: a read ``T[…, e, …]`` is zero where ``e`` is off its axis's grid
  (outside the range, or between points when ``e`` is a fraction), so it
  absorbs the bracket ``[e ∈ {0..n−1}]`` that sifting a shifted delta leaves.
- ``orient``: a summed index that runs backwards in a read beside one that
  runs forwards (``dY[(u + p − i)/σ]``) is reversed, ``Σ_i f(i) = Σ_i f(K−1−i)``,
  so each axis of every read runs one way. For a convolution's input gradient
  this is the flipped kernel of a transposed convolution.
"""
from __future__ import annotations

import sympy as sp

from .ir import OnGrid, Sum, affine, is_plain, shifted


def _axis_extent(read, axis):
    shape = read.base.shape
    return shape[axis] if shape is not None else None


def _reads_at(expr, e, n) -> list:
    """Reads in ``expr`` at index ``e`` on an axis of extent ``n``."""
    return [r for r in expr.atoms(sp.Indexed)
            if any(sp.simplify(ix - e) == 0 and _axis_extent(r, a) is not None and sp.simplify(_axis_extent(r, a) - n) == 0
                   for a, ix in enumerate(r.indices))]


# Functions finite at every finite argument: a read off the grid (0) inside one leaves a finite value, which the
# absorbed zero then multiplies to 0 (tanh(A + B r[off]) · dn[off] is 0 off the grid, as the bracket said).
BOUNDED = (sp.tanh, sp.sin, sp.cos, sp.erf, sp.erfc, sp.atan)


def _unsafe_off_grid(expr) -> bool:
    """True if a read at an index expression sits in a denominator or inside a function in ``expr`` (other than
    a bounded one of a safe argument): off the grid it reads 0 there, and 1/0 or log 0 times the absorbed zero
    would be nan."""
    if isinstance(expr, BOUNDED):
        return any(_unsafe_off_grid(a) for a in expr.args)
    inner = None
    if isinstance(expr, sp.Pow) and not (expr.exp.is_Integer and expr.exp > 0):
        inner = expr.base
    elif isinstance(expr, sp.Function):
        inner = expr
    if inner is not None and any(shifted(r) for r in inner.atoms(sp.Indexed)):
        return True
    return any(_unsafe_off_grid(a) for a in expr.args if isinstance(a, sp.Basic))


def absorb(expr):
    """Drop each ``[e ∈ {0..n−1}]`` beside a read at ``e`` on an axis of extent n.

    Only where every read at ``e`` in the term is a plain factor (or a positive power): off the grid
    such a read is 0 and so is the term. A read at ``e`` inside a denominator, a log or any other
    function would be 1/0 or log 0 there, so the bracket stays (printed as a mask that selects 0).
    """
    def drop(term):
        factors = sp.Mul.make_args(term)
        guards = [f for f in factors if isinstance(f, OnGrid)]
        if not guards:
            return term
        kept = []
        for g in guards:
            e, n = g.args
            plain = [f for f in factors if (f.base if isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp > 0
                                            else f) in _reads_at(f, e, n)]
            rest = sp.Mul(*[f for f in factors if f not in plain and not isinstance(f, OnGrid)])
            if not plain or _unsafe_off_grid(rest):
                kept.append(g)
        return sp.Mul(*[f for f in factors if not isinstance(f, OnGrid)], *kept)

    return expr.replace(lambda e: isinstance(e, sp.Mul) and e.has(OnGrid), drop)


def _signs(read) -> list:
    """Per axis read at an index expression: {index: sign of its coefficient}."""
    out = []
    for ix in read.indices:
        if is_plain(ix):
            continue
        a = affine(ix)
        if a is not None:
            out.append({m: (1 if c.is_positive else -1 if c.is_negative else 0) for m, c in a.coeffs})
    return out


def _mixed(axes) -> int:
    return sum(1 for axis in axes if {1, -1} <= set(axis.values()))


def orient(expr):
    """Reverse summed indices that run backwards in a read against another index."""
    def turn(e):
        body = e.function
        for k, lo, hi in e.limits:
            if any(k in inner.variables for inner in body.atoms(sp.Sum)):
                continue  # an inner sum binds the same name: substitution would reach its limits
            axes = [axis for r in body.atoms(sp.Indexed) for axis in _signs(r)]
            if not any(axis.get(k) == -1 and 1 in axis.values() for axis in axes):
                continue
            flipped = body.xreplace({k: hi + lo - k})
            after = [axis for r in flipped.atoms(sp.Indexed) for axis in _signs(r)]
            if _mixed(after) < _mixed(axes):
                body = flipped
        return Sum(body, *e.limits) if body != e.function else e

    return expr.replace(lambda e: isinstance(e, sp.Sum), turn)
