"""What every backend is made of: the ``Backend`` table, its ``Capabilities``, and the spellings they share."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

HELPERS = Path(__file__).resolve().parents[2] / "helpers"


@dataclass(frozen=True)
class Capabilities:
    # Statements as steps on their own new array (``acc += b``, ``np.exp(acc, out=acc)``): in backward kernels,
    # and in forward kernels too with ``in_place_forward``.
    in_place: bool = False
    in_place_forward: bool = True
    # ``c + a @ b`` as one operation (``torch.addmm``).
    fused_add_matmul: bool = False
    # ``c + v·a·b`` elementwise as one operation (``torch.addcmul``), where a statement is not built in place.
    fused_multiply_add: bool = False
    # Σ of a product of arrays over the same indices as einsum (one pass), not a product and then a sum.
    einsum_products: bool = True


@dataclass(frozen=True)
class Backend:
    name: str                    # the output folder: numpy/, torch/
    title: str                   # for documentation and error messages
    module: str                  # the alias its code calls through: np, torch
    imports: dict                # alias -> import line
    functions: dict              # SymPy function name -> spelling
    spell: dict                  # operation kind -> fn(renderer, node) -> code
    caps: Capabilities
    helpers: str                 # module name in derive/helpers/
    infix: frozenset = field(default_factory=frozenset)

    def helper_source(self) -> str:
        return (HELPERS / f"{self.helpers}.py").read_text(encoding="utf-8")


def _fill(r, op) -> str:
    return "" if op.fill is None else f", fill={r.value(op.fill)}"


# Helper calls, spelled alike in every backend (each backend's helper module implements them).
CALLS = {
    "GridView": lambda r, op: f"{r.helper('_grid_view')}({r.value(op.x)}, {r.grid(op.axes)}, "
                              f"{r.shape(op.shape)}{_fill(r, op)})",
    "Product": lambda r, op: f"{r.helper('_product')}(into, {op.name!r}, {r.value(op.a)}, {r.value(op.b)})",
    "Mesh": lambda r, op: f"{r.helper('_mesh')}({r.shape(op.shape)}, {op.like})",
    "ArgMax": lambda r, op: f"{r.helper('_argmax')}({r.value(op.x)}, {op.n})",
    "AtMaxGather": lambda r, op: f"{r.helper('_at_max')}({r.value(op.value)}, {r.value(op.window)}, {op.n})",
    "ScatterAdd": lambda r, op: f"{r.helper('_scatter_add')}({r.shape(op.shape)}, "
                                f"({', '.join(r.value(i) for i in op.index)},), {r.value(op.values)})",
    "GridScatter": lambda r, op: f"{r.helper('_grid_scatter')}({r.shape(op.shape)}, {r.grid(op.axes)}, "
                                 f"{r.shape(op.lead)}, {r.shape(op.window)}, {r.value(op.best)}, "
                                 f"{r.value(op.values)})",
    "MaxPool": lambda r, op: f"{r.helper('_max_pool')}({r.value(op.x)}, {r.numbers(op.stride)}, "
                             f"{r.numbers(op.dilation)}, {r.numbers(op.offset)}, {r.numbers(op.window)}, "
                             f"{r.numbers(op.out)}{', argmax=True' if op.argmax else ''})",
    "MaxPoolScatter": lambda r, op: f"{r.helper('_max_pool_scatter')}({r.value(op.x)}, {r.value(op.values)}, "
                                    f"{r.numbers(op.stride)}, {r.numbers(op.dilation)}, {r.numbers(op.offset)}, "
                                    f"{r.numbers(op.window)}"
                                    f"{'' if op.argmax is None else ', ' + r.value(op.argmax)})",
    "Correlate": lambda r, op: f"{r.helper('_correlate')}({r.value(op.x)}, {r.value(op.w)}, "
                               f"{r.value(op.bias) if op.bias is not None else None}, {r.numbers(op.stride)}, "
                               f"{r.numbers(op.dilation)}, {r.numbers(op.offset)}, {r.numbers(op.denom)}, "
                               f"{r.numbers(op.out)})",
    "CorrelateTransposed": lambda r, op: f"{r.helper('_correlate_transposed')}({r.value(op.y)}, {r.value(op.w)}, "
                                         f"{r.numbers(op.stride)}, {r.numbers(op.dilation)}, "
                                         f"{r.numbers(op.padding)}, {r.numbers(op.out)})",
    "CorrelateWeight": lambda r, op: f"{r.helper('_correlate_weight')}({r.value(op.x)}, {r.value(op.dy)}, "
                                     f"{r.numbers(op.stride)}, {r.numbers(op.dilation)}, {r.numbers(op.offset)}, "
                                     f"{r.numbers(op.window)})",
}


