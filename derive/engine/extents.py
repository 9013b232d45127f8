"""Sizes: output extents that follow from the reads, declared extents, and dimension expressions.

An index ``h`` over a dimension declared with ``Forward.output_dims("Ho")`` is
read inside an index expression such as ``X[s, c, σh + i − p, …]`` or
``A[s, c, (u − k)/σ]``. Its extent is the largest for which the read, with every
other index at its last value, stays inside the tensor's axis and its declared
padding at the far end:

    σ (H_o − 1) + (K − 1) − p ≤ H − 1 + p    ⇒    H_o = ⌊(H + 2p − K)/σ⌋ + 1
    (U − 1 − (K − 1)) / σ ≤ L − 1            ⇒    U = σ (L − 1) + K

so a window read forwards gives the valid correlation's extent and one read
backwards the full (transposed) convolution's. A read before the start, or
between grid points, is zero like any read off the tensor. Several reads bound
one extent: the smallest bound holds.

An extent may instead be declared, ``output_dims(Lo=factor * L)`` (an integer expression of dimensions and
integer hyper-parameters; the reads do not bound it), or an index may run over a dimension expression,
``indices(l=L - K + 1)``; a tensor may be
sized by one (``2*P``, ``D - 1``). A kernel binds each dimension from the first
array axis that carries it alone; an axis sized by an expression whose one
unknown dimension appears nowhere else gives that dimension (``P = n/2``, checked
to be a whole number), and every other expression axis is checked.
"""
from __future__ import annotations

import sympy as sp

from .errors import DeriveError
from .ir import affine, extent, is_plain
from .text import index_text


def _reads(forward):
    for d in forward.definitions:
        for e in sorted(d.expr.atoms(sp.Indexed), key=str):
            t = forward.tensors.get(str(e.base.label))
            if t is not None:
                yield d, e, t


def _bound(forward, where, e, ix, dim, hi_pad, sizes):
    """The extent a read ``e`` at index expression ``ix`` on an axis of size ``dim`` gives the one index
    in it over a dimension of ``sizes``; None when no such index is in it."""
    a = affine(ix)
    mine = [(m, c) for m, c in a.coeffs if extent(m) in sizes]
    if not mine:
        return None
    if len(mine) > 1 or not mine[0][1].is_positive:
        raise DeriveError(forward.name, "check", where,
                          f"cannot derive an extent from {index_text(e)}: one output index with a "
                          "positive integer coefficient is needed")
    (m, c), = mine
    others = [(k, ck) for k, ck in a.coeffs if k != m]
    if any(not (ck.is_nonnegative or ck.is_nonpositive) for _, ck in others):
        raise DeriveError(forward.name, "check", where, f"the sign of a coefficient in {index_text(ix)} is unknown")
    last = sum((ck * (extent(k) - 1) for k, ck in others), sp.S.Zero)
    # (c·m + last + const)/q ≤ dim − 1 + pad  ⇔  m ≤ (q·(dim − 1 + pad) − last − const)/c
    return extent(m), sp.floor((a.denom * (dim - 1 + hi_pad) - last - a.const) / c) + 1


def solve(forward) -> dict:
    """Each derived or declared dimension → its extent, in the declared dimensions and hyper-parameters."""
    if not forward.derived:
        return {}
    solved = {D: f for D, f in forward.derived.items() if f is not None}
    for D, f in solved.items():
        _check_declared(forward, D, f)
    bounds = {D: [] for D, f in forward.derived.items() if f is None}
    for d, e, t in _reads(forward):
        where = f"{index_text(d.lhs)} = {index_text(d.expr)}"
        for axis, (ix, dim) in enumerate(zip(e.indices, t.dims)):
            if is_plain(ix):
                continue
            # Only the extents being derived are bounded by the reads; a declared one is the user's (it may be
            # read backwards, A[L − 1 + p − u], or past the tensor's end, where reads are zero).
            found = _bound(forward, where, e, ix, dim, t.padding[axis][1] if t.padding else 0, bounds)
            if found is not None:
                bounds[found[0]].append(found[1])
    out = dict(solved)
    for D, found in bounds.items():
        if not found:
            raise DeriveError(forward.name, "check", str(D),
                              "no index expression over this output dimension determines its extent")
        out[D] = sp.Min(*found)
    return out


def _check_declared(forward, D, formula):
    """A declared extent is an integer expression of dimensions and integer hyper-parameters."""
    known = {d for t in forward.tensors.values() for d in t.dims for d in sp.sympify(d).free_symbols}
    known |= {s.symbol for s in forward.scalars.values() if s.symbol.is_integer}
    stray = sorted(formula.free_symbols - known - {D}, key=str)
    if stray or not formula.is_integer:
        why = (f"{stray[0]} is neither a dimension nor an integer hyper-parameter" if stray
               else "it is not an integer expression")
        raise DeriveError(forward.name, "check", f"{D} = {index_text(formula)}", f"cannot declare this extent: {why}")


def axis_sizes(arrays, hyper: set, derived: set = frozenset()) -> tuple:
    """How a kernel learns its sizes from the arrays ``[(name, dims), ...]`` it is given.

    Returns ``(plain, solved, checked)``: ``plain`` each dimension symbol → (array, axis) of its first plain
    axis; ``solved`` each dimension found only inside one axis's expression (linear in it, ``2*P``) →
    (array, axis, expression); ``checked`` the other expression axes and the axes sized by a hyper-parameter
    (which the caller passes, so an array's shape never overrides it), as (array, axis, expression).
    ``derived``: extents the kernel computes itself (a plain axis of one is bound, then checked).
    """
    plain, expressions = {}, []
    for name, dims in arrays:
        for axis, d in enumerate(dims):
            d = sp.sympify(d)
            if isinstance(d, sp.Symbol) and d not in hyper:
                plain.setdefault(d, (name, axis))
            elif not d.is_Integer:
                expressions.append((name, axis, d))
    solved, checked = {}, []
    for name, axis, d in expressions:
        unknown = d.free_symbols - set(plain) - set(solved) - set(hyper) - set(derived)
        if len(unknown) == 1:
            (P,) = unknown
            poly = sp.Poly(d, P) if d.is_polynomial(P) else None
            if poly is not None and poly.degree() == 1:
                solved[P] = (name, axis, d)
                continue
        checked.append((name, axis, d))
    return plain, solved, checked


def sizable(forward) -> set:
    """Every dimension a forward kernel can learn from its arguments' shapes, or derives."""
    hyper = {s.symbol for s in forward.scalars.values()}
    plain, solved, _ = axis_sizes([(t.name, t.dims) for t in forward.arguments], hyper, set(forward.derived))
    return set(plain) | set(solved) | set(forward.derived)


def free_dimensions(forward) -> list:
    """The dimensions a caller chooses: every symbol in a tensor's sizes but derived extents and
    hyper-parameters, sorted by name."""
    scalars = {s.symbol for s in forward.scalars.values()}
    return sorted({x for t in forward.tensors.values() for d in t.dims for x in sp.sympify(d).free_symbols}
                  - scalars - set(forward.derived), key=str)


def expression_axes(forward) -> set:
    """The sizes written as expressions (``2*P``, ``D − 1``): each must come out at least 1 for drawn sizes."""
    return {d for t in forward.tensors.values() for d in t.dims if not isinstance(d, sp.Symbol) and not d.is_Integer}


def shape(dims, values: dict) -> tuple:
    """Concrete sizes of ``dims`` (symbols, numbers or expressions) at ``values``."""
    return tuple(int(sp.sympify(d).subs(values)) for d in dims)
