"""Kernels as data: the bottom layer of the engine.

A ``Kernel`` lists its array arguments (with symbolic shapes), scalar
hyper-parameters, statements ``lhs[indices] = rhs`` whose right-hand sides are
SymPy expressions (contractions are ``Sum`` of products, elementwise work is
everything else), and the names it returns.

Everything here depends on SymPy alone, and every other layer may use it: the
node the engine adds to SymPy (``MaxOver``), index helpers, and the one
recogniser of matrix products (``contraction``) that both the code printers and
the matrix-notation reader read.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp


class MaxOver(sp.Function):
    """``max_k expr``: the maximum of ``expr`` over the index ``k`` (a reduction)."""

    nargs = 2

    def _latex(self, printer):
        expr, k = self.args
        return r"\max_{%s} %s" % (printer._print(k), printer._print(expr))

    def _index_text(self, printer):
        return f"max_{self.args[1]} {printer._print(self.args[0])}"


@dataclass(frozen=True)
class Array:
    name: str
    dims: tuple


@dataclass(frozen=True)
class Statement:
    lhs: object              # Indexed, or IndexedBase for a scalar
    rhs: sp.Expr
    # Gradient this statement serves ("dX"), so a caller may skip it.
    serves: str | None = None

    @property
    def name(self) -> str:
        return str(base_of(self.lhs).label)

    @property
    def indices(self) -> tuple:
        return tuple(self.lhs.indices) if isinstance(self.lhs, sp.Indexed) else ()

    def with_rhs(self, rhs) -> "Statement":
        return Statement(self.lhs, rhs, self.serves)


@dataclass
class Kernel:
    name: str
    arguments: list           # [Array], positional (a forward) or keyword-only after the upstream (a backward)
    scalars: list             # [notation.Scalar], keyword arguments
    statements: list          # [Statement]
    results: list             # names returned, in order
    # result name -> keyword flag that turns it off (``need_dX``)
    optional: dict = field(default_factory=dict)
    # A backward's first argument: the upstream gradient (``dY``; ``dL`` for a loss, a scalar defaulting to 1).
    upstream: Array | None = None
    upstream_default: float | None = None

    def dims(self) -> list:
        """Each dimension symbol with the first argument and axis that carries it."""
        seen = {}
        for a in ([self.upstream] if self.upstream else []) + self.arguments:
            for axis, d in enumerate(a.dims):
                if isinstance(d, sp.Symbol) and d not in seen:
                    seen[d] = (a.name, axis)
        return list(seen.items())


# -- index helpers -------------------------------------------------------------

def base_of(e):
    return e.base if isinstance(e, sp.Indexed) else e


def element(base, indices):
    """``base[indices]``, or the bare base for a scalar."""
    return base[tuple(indices)] if indices else base


def free_indices(expr) -> set:
    """Indices of ``expr`` that no Sum or MaxOver binds."""
    if isinstance(expr, sp.Idx):
        return {expr}
    if isinstance(expr, sp.Sum):
        return free_indices(expr.function) - {lim[0] for lim in expr.limits}
    if isinstance(expr, MaxOver):
        return free_indices(expr.args[0]) - {expr.args[1]}
    if isinstance(expr, sp.Indexed):
        return {i for i in expr.indices if isinstance(i, sp.Idx)}
    out = set()
    for a in expr.args:
        out |= free_indices(a)
    return out


def indexed_bases(expr) -> set:
    """Names of every tensor in ``expr``, indexed or scalar (a scalar tensor is a bare IndexedBase)."""
    indexed = expr.atoms(sp.Indexed)
    return {str(e.base.label) for e in indexed} | {
        str(b.label) for b in expr.atoms(sp.IndexedBase) if not any(e.base == b for e in indexed)}


def extent(i):
    """The size of the range an index runs over."""
    return i.upper + 1


# -- matrix products -----------------------------------------------------------

@dataclass(frozen=True)
class Contraction:
    """Σ_k of two tensors that is a matrix product: ``left`` (in layout ``left_layout``) times ``right``.

    ``kind`` is "gemm" (matrix @ matrix) or "gemv" (matrix @ vector).
    """

    kind: str
    left: sp.Indexed
    right: sp.Indexed
    left_layout: tuple
    right_layout: tuple


def contraction(expr, target) -> Contraction | None:
    """``expr`` (a Sum) as a GEMM or GEMV producing the indices ``target`` in that order, else None.

    Σ_k A_pk B_kq with target (p, q) is ``A B``; operands written in another
    order (A_kp) read as transposes. Σ_k A_pk v_k with target (p,) is ``A v``.
    """
    if not isinstance(expr, sp.Sum) or len(expr.limits) != 1:
        return None
    k = expr.limits[0][0]
    factors = sp.Mul.make_args(expr.function)
    if len(factors) != 2 or not all(isinstance(f, sp.Indexed) for f in factors):
        return None
    if any(len(set(f.indices)) != len(f.indices) for f in factors):
        return None
    a, b = factors
    target = tuple(target)
    if len(target) == 2 and all(len(t.indices) == 2 for t in factors) and k in a.indices and k in b.indices:
        left = a if target[0] in a.indices else b
        right = b if left is a else a
        if set(left.indices) == {target[0], k} and set(right.indices) == {k, target[1]} and target[0] != target[1]:
            return Contraction("gemm", left, right, (target[0], k), (k, target[1]))
    if len(target) == 1:
        mats = [t for t in factors if len(t.indices) == 2]
        vecs = [t for t in factors if tuple(t.indices) == (k,)]
        if len(mats) == 1 and len(vecs) == 1 and set(mats[0].indices) == {target[0], k}:
            return Contraction("gemv", mats[0], vecs[0], (target[0], k), (k,))
    return None
