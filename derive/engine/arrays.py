"""Array operations: what a kernel statement becomes once lowered (``lower.py``), before any backend spells it.

Every node says *what* is computed on whole arrays with every layout decision
already taken: which axes a view permutes or inserts, which axes a reduction
removes, the subscripts of a contraction, the orientation of a matrix product,
the stride, dilation and offset of a convolution. A backend (``backends/``)
only spells the nodes, through a table; ``render.py`` walks them.

Sizes, strides and other Python numbers stay SymPy expressions (``Number``),
printed as plain Python arithmetic. Elementwise work is a ``Map``: a SymPy
expression over ``Slot`` symbols, each bound to the array operation that
fills it (already broadcast to the map's layout), so arithmetic keeps SymPy's
operator precedence while functions, selects and clamps come from the table.

Instructions (``Assign``, ``Update``, ``ApplyInPlace``, ...) are the lines of
a statement: ``Y = X @ W.T`` then ``Y += b``. Kernel-level instructions bind
sizes, promote dtypes, check hyper-parameters and derived extents, and add
gradients into the caller's arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp


class Op:
    """An array (or Python number) computed by a kernel."""


class Slot(sp.Symbol):
    """A leaf of a ``Map``'s expression: the array one of its operands computes."""


# -- leaves and views -------------------------------------------------------------

@dataclass(frozen=True)
class Name(Op):
    """An argument or an earlier result, as it is stored."""

    name: str


@dataclass(frozen=True)
class Number(Op):
    """Python arithmetic on sizes and scalar hyper-parameters (a SymPy expression)."""

    expr: sp.Expr


@dataclass(frozen=True)
class MinusInfinity(Op):
    """−∞: what a read off the grid holds inside a max (padding never wins)."""


@dataclass(frozen=True)
class Permute(Op):
    x: Op
    perm: tuple


@dataclass(frozen=True)
class Expand(Op):
    """``x`` with new axes inserted so it broadcasts: slots are True (an axis of x) or False (a new axis)."""

    x: Op
    slots: tuple


@dataclass(frozen=True)
class Take(Op):
    """``x`` at fixed positions on some axes: ``index`` holds a Number, an integer array (a gather: the arrays
    broadcast together, their axes first, then the whole axes) or None (the whole axis)."""

    x: Op
    index: tuple


@dataclass(frozen=True)
class OnesLike(Op):
    x: Op


@dataclass(frozen=True)
class GridView(Op):
    """``V[m…] = x[e_0(m), e_1(m), …]`` with ``e_k = (Σ_m c_km m + d_k)/q_k``; ``fill`` off the grid.

    ``axes`` holds ``(coefficients, d, q)`` per axis of x (SymPy expressions); ``shape`` the view's extents.
    """

    x: Op
    axes: tuple
    shape: tuple
    fill: Op | None = None   # MinusInfinity inside a max; None: zero


@dataclass(frozen=True)
class Flip(Op):
    x: Op
    axes: tuple


# -- elementwise work and reductions ----------------------------------------------

@dataclass(frozen=True)
class Map(Op):
    """Elementwise: ``expr`` over ``Slot`` symbols, ``args`` the (slot, operation) pairs that fill them."""

    expr: sp.Expr
    args: tuple


@dataclass(frozen=True)
class Where(Op):
    """``a`` where ``cond`` holds, else ``b``."""

    cond: Op
    a: Op
    b: Op


@dataclass(frozen=True)
class Masked(Op):
    """``value`` where ``x > threshold`` (a Python number), else 0: a gradient through a threshold (ReLU's)."""

    value: Op
    x: Op
    threshold: Op


@dataclass(frozen=True)
class Clamp(Op):
    """x clamped elementwise between Python numbers (``low``/``high`` a Number, or None: no bound)."""

    x: Op
    low: Op | None
    high: Op | None


@dataclass(frozen=True)
class Extremum(Op):
    """The elementwise "maximum" or "minimum" of two arrays."""

    op: str
    a: Op
    b: Op


@dataclass(frozen=True)
class Reduce(Op):
    """``op`` ("sum" or "max") of x over ``axes`` (all of them when ``axes`` has ``ndim`` entries)."""

    op: str
    x: Op
    axes: tuple
    ndim: int


@dataclass(frozen=True)
class WindowReduce(Op):
    """``op`` of a strided window view over its last ``n`` axes (small windows: a loop over their positions)."""

    op: str
    x: Op
    n: int


@dataclass(frozen=True)
class Einsum(Op):
    subscripts: str
    operands: tuple
    # A contraction of strided windows (more than 3 axes) needs a BLAS path, not einsum's own loops.
    big: bool


@dataclass(frozen=True)
class MatMul(Op):
    """A matrix product ("gemm") or matrix–vector product ("gemv") of operands already transposed as needed."""

    a: Op
    b: Op
    kind: str


@dataclass(frozen=True)
class AddMatMul(Op):
    """``c + a @ b`` in one call (a backend with ``fused_add_matmul``)."""

    c: Op
    a: Op
    b: Op


@dataclass(frozen=True)
class AddMul(Op):
    """``c + value·a·b`` elementwise in one pass (a backend with ``fused_multiply_add``); ``value`` a Number."""

    c: Op
    a: Op
    b: Op
    value: Op


@dataclass(frozen=True)
class Product(Op):
    """The gradient ``name`` as the matrix product ``a @ b``, left unformed when the caller adds it into an array."""

    name: str
    a: Op
    b: Op


# -- convolutions ------------------------------------------------------------------

@dataclass(frozen=True)
class Correlate(Op):
    """``y[n, co, o…] = Σ_{ci, k…} x[n, ci, (σ·o + δ·k + c)/q …] w[co, ci, k…]``, x zero off its grid
    (a convolution's forward); ``bias`` (per co) added when given. Tuples hold one Number per spatial axis."""

    x: Op
    w: Op
    bias: Op | None
    stride: tuple
    dilation: tuple
    offset: tuple
    denom: tuple
    out: tuple


@dataclass(frozen=True)
class CorrelateTransposed(Op):
    """``dx[n, ci, u…] = Σ_{co, h…, k…: σh + δk − p = u} y[n, co, h…] w[co, ci, k…]``: a transposed
    convolution (a convolution's input gradient), ``out`` the extents of u."""

    y: Op
    w: Op
    stride: tuple
    dilation: tuple
    padding: tuple
    out: tuple


@dataclass(frozen=True)
class CorrelateWeight(Op):
    """``dw[co, ci, k…] = Σ_{n, o…} x[n, ci, σ·o + δ·k + c …] dy[n, co, o…]``, x zero off its range
    (a convolution's weight gradient); ``window`` the extents of k."""

    x: Op
    dy: Op
    stride: tuple
    dilation: tuple
    offset: tuple
    window: tuple


@dataclass(frozen=True)
class MaxPool(Op):
    """``y[n, c, o…] = max_{k…} x[n, c, σ·o + δ·k + c₀ …]``, reads off x's range never winning (max pooling);
    with ``argmax`` the pair (y, the arg-max as an index array in the backend's own representation)."""

    x: Op
    stride: tuple
    dilation: tuple
    offset: tuple
    window: tuple
    out: tuple
    argmax: bool = False


@dataclass(frozen=True)
class MaxPoolScatter(Op):
    """The gradient of a ``MaxPool``: ``values[n, c, o…]`` added to x's position at the first arg-max
    (row-major ties, as PyTorch) of each window; an array of x's shape. ``argmax``: the arg-max the forward
    saved (else it is searched for again)."""

    x: Op
    values: Op
    stride: tuple
    dilation: tuple
    offset: tuple
    window: tuple
    argmax: Op | None = None


# -- arrays made from numbers ------------------------------------------------------

@dataclass(frozen=True)
class Full(Op):
    """``x`` broadcast to ``shape``, as a new array."""

    x: Op
    shape: tuple


@dataclass(frozen=True)
class Filled(Op):
    """An array of ``shape`` holding ``value`` (a Number or a 0-d array), of the dtype of the array ``like``."""

    value: Op
    shape: tuple
    like: str | None


@dataclass(frozen=True)
class Identity(Op):
    n: sp.Expr
    like: str | None


@dataclass(frozen=True)
class Typed(Op):
    """A Python number as a scalar of the dtype (and device) of the array ``like``."""

    value: Op
    like: str | None


# -- arg-max and scatter ---------------------------------------------------------------

@dataclass(frozen=True)
class Mesh(Op):
    """Broadcastable index arrays 0…n−1, one per axis of ``shape`` (a tuple)."""

    shape: tuple
    like: str | None


@dataclass(frozen=True)
class Item(Op):
    """The ``n``-th array of a tuple of arrays (``at[2]``, ``best[0]``)."""

    x: Op
    n: int


@dataclass(frozen=True)
class ArgMax(Op):
    """Index arrays of the first maximum over the last ``n`` axes of x (row-major ties, as PyTorch)."""

    x: Op
    n: int


@dataclass(frozen=True)
class AtMaxGather(Op):
    """``value`` at the first maximum of ``window`` over their last ``n`` axes."""

    value: Op
    window: Op
    n: int


@dataclass(frozen=True)
class ScatterAdd(Op):
    """An array of ``shape``, zero but for ``out[index] += values`` (positions off the array add nothing)."""

    shape: tuple
    index: tuple
    values: Op


@dataclass(frozen=True)
class GridScatter(Op):
    """The adjoint of a window read at its arg-max: an array of ``shape``, zero but for
    ``out[e(m, best(m))] += values(m)`` over the lead positions m, ``e`` the ``axes`` of a ``GridView``."""

    shape: tuple
    axes: tuple
    lead: tuple
    window: tuple
    best: Op
    values: Op


# -- instructions ------------------------------------------------------------------------

@dataclass(frozen=True)
class Assign:
    target: str | tuple     # a tuple: the names of an operation's several results
    value: Op


@dataclass(frozen=True)
class Update:
    """``target op= value`` with op one of + − * /."""

    target: str
    op: str
    value: Op


@dataclass(frozen=True)
class ApplyInPlace:
    """``target = f(target)`` in place, f a one-argument function (SymPy's name)."""

    target: str
    function: str


@dataclass(frozen=True)
class ClampInPlace:
    target: str
    low: Op | None
    high: Op | None


@dataclass(frozen=True)
class SelectInPlace:
    """``target = value where cond``; ``whole``: cond and value (unless a number) have target's shape;
    ``scalar``: value is one number (a Python number or a 0-d array)."""

    target: str
    cond: Op
    value: Op
    whole: bool
    scalar: bool


@dataclass(frozen=True)
class Shapes:
    """Bind dimension names to an array's extents: all axes (``axes`` None) or the listed ones."""

    names: tuple
    array: str
    axes: tuple | None


@dataclass(frozen=True)
class ZeroUpstream:
    """An upstream gradient the caller omitted (None) as zeros of its output's shape, in the dtype and on the
    device of the array ``like`` (a module with several outputs: the gradient of those not used)."""

    name: str
    like: str | None
    shape: tuple


@dataclass(frozen=True)
class Promote:
    """Bring the arrays to their common floating dtype (every kernel computes in it)."""

    names: tuple


@dataclass(frozen=True)
class CheckLabels:
    """Bring an index array to the backend's integer indices, refusing one that is not of integers or holds a
    value outside 0..extent−1, in one line naming the kernel and the array."""

    kernel: str
    name: str
    extent: sp.Expr


@dataclass(frozen=True)
class CheckInteger:
    """Refuse a hyper-parameter that is not an integer ≥ least, in one line naming the kernel."""

    kernel: str
    name: str
    least: int


@dataclass(frozen=True)
class Extent:
    """A derived output extent: computed (``check`` False) or checked against the arrays' (``check`` True)."""

    kernel: str
    dim: str
    formula: sp.Expr
    rule: str        # the formula in index text, for the message
    check: bool


@dataclass(frozen=True)
class AxisSize:
    """An array axis sized by a dimension expression (``2*P``, ``L − K + 1``): ``solve`` binds its one
    unknown dimension from the axis (``P = n/2``, a whole number ≥ 1); otherwise the axis is checked
    against the expression. With ``array`` None, an extent the kernel makes, checked to be at least 1."""

    kernel: str
    formula: sp.Expr
    array: str | None = None
    axis: int = 0
    size: str = ""                 # the local name bound to the axis's size
    solve: sp.Symbol | None = None


@dataclass(frozen=True)
class Accumulate:
    """Add each gradient the caller names in ``into`` into its array; those gradients become None."""

    results: tuple


# -- walking ---------------------------------------------------------------------------

def children(node):
    """The operations and SymPy expressions a node holds, in field order (tuples flattened)."""
    out = []

    def visit(v):
        if isinstance(v, (Op, sp.Basic)) or hasattr(v, "__dataclass_fields__"):
            out.append(v)
        elif isinstance(v, tuple):
            for x in v:
                visit(x)

    for name in getattr(node, "__dataclass_fields__", {}):
        visit(getattr(node, name))
    return out


def symbols(node) -> set:
    """Dimension and scalar symbols a node (and everything under it) refers to; a Map's slots are not symbols."""
    found = set()
    stack = [node]
    while stack:
        v = stack.pop()
        if isinstance(v, sp.Basic):
            found |= {s for s in v.free_symbols if not isinstance(s, Slot)}
        else:
            stack += children(v)
    return found
