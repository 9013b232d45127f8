"""Output extents that follow from the reads: a convolution's ``H_o = ⌊(H + 2p − K)/σ⌋ + 1``.

An index ``h`` over a dimension declared with ``Forward.output_dims`` is read
inside an index expression such as ``X[s, c, σh + i − p, …]``. Its extent is
the largest that keeps every such read inside the tensor's axis and its
declared padding at the far end:

    σ (H_o − 1) + max_i (i) − p ≤ H − 1 + p    ⇒    H_o = ⌊(H + 2p − K)/σ⌋ + 1

(a read before the start is zero, like any read off the tensor). Several reads
bound one extent: the smallest bound holds.
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


def solve(forward) -> dict:
    """Each derived dimension → its extent, in the declared dimensions and hyper-parameters."""
    if not forward.derived:
        return {}
    bounds = {D: [] for D in forward.derived}
    for d, e, t in _reads(forward):
        where = f"{index_text(d.lhs)} = {index_text(d.expr)}"
        for axis, (ix, dim) in enumerate(zip(e.indices, t.dims)):
            if is_plain(ix):
                continue
            a = affine(ix)
            hi_pad = t.padding[axis][1] if t.padding else 0
            mine = [(m, c) for m, c in a.coeffs if extent(m) in bounds]
            if not mine:
                continue
            if len(mine) > 1 or a.denom != 1 or not mine[0][1].is_positive:
                raise DeriveError(forward.name, "check", where,
                                  f"cannot derive an extent from {index_text(e)}: one output index with a "
                                  "positive integer coefficient is needed")
            (m, c), = mine
            others = [(k, ck) for k, ck in a.coeffs if k != m]
            top = sum((ck * (extent(k) - 1) if ck.is_nonnegative else sp.S.Zero for k, ck in others), sp.S.Zero)
            if any(not (ck.is_nonnegative or ck.is_nonpositive) for _, ck in others):
                raise DeriveError(forward.name, "check", where, f"the sign of a coefficient in {index_text(ix)} is unknown")
            bounds[extent(m)].append(sp.floor((dim - 1 + hi_pad - top - a.const) / c) + 1)
    out = {}
    for D, found in bounds.items():
        if not found:
            raise DeriveError(forward.name, "check", str(D),
                              "no index expression over this output dimension determines its extent")
        out[D] = sp.Min(*found)
    return out
