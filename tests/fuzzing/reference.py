"""The PyTorch side of a drawn forward: its AST (tests/fuzzing/grammar.py) evaluated with torch ops.

Independent of the engine: every expression is a tensor over the grid of all the forward's indices
(one axis per index, size 1 where it does not depend on it); a read gathers its tensor at integer
index tensors (zero off the tensor), a sum is ``sum``, a window's maximum is ``torch.max`` over the
flattened window (its gradient to the first maximum, as PyTorch's pools) with off-tensor reads no
candidate; kinks follow PyTorch (``relu`` and ``where`` against a constant: the constant's slope at the
tie; ``maximum``/``minimum`` of two expressions: half each). Output extents are computed here from
the reads, by the rule the notation states (the largest keeping every read inside tensor and padding).
"""
from __future__ import annotations

import math

import torch

UNARY = {
    "exp": torch.exp,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "erf": torch.special.erf,
    "erfc": torch.special.erfc,
    "softplus": lambda x: torch.logaddexp(x, torch.zeros_like(x)),
    "atan": torch.atan,
    "sin": torch.sin,
    "cosh": torch.cosh,
    "abs": torch.abs,
    "relu": torch.relu,
    "negrelu": lambda x: -torch.relu(-x),
    "sign": torch.sign,
    "square": lambda x: x ** 2,
    "cube": lambda x: x ** 3,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "recip": lambda x: 1 / x,
    "rsqrt": torch.rsqrt,
    "pow32": lambda x: x ** 1.5,
}


def _reads(node, out):
    if isinstance(node, list) and node:
        if node[0] == "read":
            out.append(node)
            return out
        for x in node[1:]:
            _reads(x, out)
    return out


def _factors(axis):
    return {f for _, fs in axis for f in fs if isinstance(f, str)}


class Evaluation:
    """One call of the reference: sizes from the arrays, then the lets and the output in order."""

    def __init__(self, spec, arrays, scalars):
        self.spec = spec
        self.tensors = {t["name"]: t for t in spec["tensors"]}
        self.values = dict(arrays)
        self.scalars = {**spec["scalars"], **spec["integers"], **scalars}
        self.sizes = {}
        for t in spec["tensors"]:
            for d, n in zip(t["dims"], arrays[t["name"]].shape):
                self.sizes[d] = int(n)
        self.order = list(spec["indices"])
        self.ranges = {}
        for i, r in spec["indices"].items():
            if isinstance(r, int):
                self.ranges[i] = r
            elif r in self.scalars:
                self.ranges[i] = int(self.scalars[r])
            elif r in self.sizes:
                self.ranges[i] = self.sizes[r]
        for d in spec["output_dims"]:
            self.sizes[d] = self._extent(d)
            for i, r in spec["indices"].items():
                if r == d:
                    self.ranges[i] = self.sizes[d]

    # -- sizes ---------------------------------------------------------------------------------------
    def _number(self, f):
        if isinstance(f, int):
            return f
        if f in self.sizes:
            return self.sizes[f]
        return int(self.scalars[f])

    def _extent(self, dim):
        """The largest extent n of ``dim`` with every read at its indices inside tensor + padding."""
        if dim in self.spec.get("extents", {}):  # declared: factor × a dimension (upsampling)
            factor, of = self.spec["extents"][dim]
            return factor * self.sizes[of]
        over = [i for i, r in self.spec["indices"].items() if r == dim]
        best = None
        nodes = [let["expr"] for let in self.spec["lets"]] + [self.spec["output"]["expr"]]
        for read in (r for n in nodes for r in _reads(n, [])):
            t = self.tensors.get(read[1])
            if t is None:
                continue
            pads = t["padding"] or [0] * len(t["dims"])
            for a, (axis, d) in enumerate(zip(read[2], t["dims"])):
                if not _factors(axis) & set(over):
                    continue
                lo, hi = (pads[a], pads[a]) if not isinstance(pads[a], list) else pads[a]
                lo, hi = self._number(lo), self._number(hi)
                slope, rest_hi = 0, 0
                for coef, fs in axis:
                    value = coef
                    for f in fs:
                        if f not in self.spec["indices"]:
                            value *= self._number(f)
                    ranged = [f for f in fs if f in self.spec["indices"]]
                    if any(f in over for f in ranged):
                        slope += value
                    elif ranged:
                        rest_hi += max(0, value * (self.ranges[ranged[0]] - 1))
                    else:
                        rest_hi += value
                n = (self.sizes[d] - 1 + hi - rest_hi) // slope + 1
                best = n if best is None else min(best, n)
        return int(best)

    # -- evaluation ----------------------------------------------------------------------------------
    def grid_index(self, i):
        shape = [1] * len(self.order)
        shape[self.order.index(i)] = self.ranges[i]
        return torch.arange(self.ranges[i]).reshape(shape)

    def axis_value(self, axis):
        """(the index read, whether it falls on a grid point): a coefficient may be a fraction [p, q]."""
        q = 1
        for coef, _ in axis:
            if isinstance(coef, list):
                q = q * coef[1] // math.gcd(q, coef[1])
        total = torch.zeros([1] * len(self.order), dtype=torch.long)
        for coef, fs in axis:
            num = coef[0] * (q // coef[1]) if isinstance(coef, list) else coef * q
            v = torch.full([1] * len(self.order), num, dtype=torch.long)
            for f in fs:
                v = v * (self.grid_index(f) if f in self.ranges and f in self.order else self._number(f))
            total = total + v
        return torch.div(total, q, rounding_mode="floor"), total % q == 0

    def read(self, node):
        """The read on the grid and where it falls on the tensor."""
        value = self.values[node[1]]
        if not node[2]:
            return value.reshape([1] * len(self.order)), torch.ones([1] * len(self.order), dtype=torch.bool)
        idx = [self.axis_value(a) for a in node[2]]
        valid = torch.ones([1] * len(self.order), dtype=torch.bool)
        clamped = []
        for (ix, on_grid), n in zip(idx, value.shape):
            valid = valid & (ix >= 0) & (ix < n) & on_grid  # between grid points reads zero
            clamped.append(ix.clamp(0, n - 1))
        shape = torch.broadcast_shapes(*[c.shape for c in clamped])
        got = value[tuple(c.expand(shape) for c in clamped)]
        return torch.where(valid, got, torch.zeros((), dtype=got.dtype)), valid

    def ev(self, node):
        kind = node[0]
        if kind == "num":
            return torch.tensor(node[1] / node[2], dtype=torch.float64).reshape([1] * len(self.order))
        if kind == "scalar":
            return torch.tensor(float(self.scalars[node[1]]), dtype=torch.float64).reshape([1] * len(self.order))
        if kind == "dim":
            return torch.tensor(float(self.sizes[node[1]]), dtype=torch.float64).reshape([1] * len(self.order))
        if kind == "read":
            return self.read(node)[0]
        if kind == "fn":
            return UNARY[node[1]](self.ev(node[2]))
        if kind in ("add", "sub", "mul", "div"):
            a, b = self.ev(node[1]), self.ev(node[2])
            return a + b if kind == "add" else a - b if kind == "sub" else a * b if kind == "mul" else a / b
        if kind == "max2":
            return torch.maximum(self.ev(node[1]), self.ev(node[2]))
        if kind == "min2":
            return torch.minimum(self.ev(node[1]), self.ev(node[2]))
        if kind == "maxc":
            c, a = self.ev(node[1]), self.ev(node[2])
            return torch.where(a > c, a, c)
        if kind == "clamp":
            a, lo, hi = self.ev(node[1]), self.ev(node[2]), self.ev(node[3])
            m = torch.where(a > lo, a, lo)
            return torch.where(m < hi, m, hi)
        if kind == "pw":
            cond = self.ev(node[1]) > self.ev(node[2])
            return torch.where(cond, self.ev(node[3]), self.ev(node[4]))
        if kind == "sum":
            dims = [self.order.index(i) for i in node[2]]
            return self._full(self.ev(node[1]), node[2]).sum(dim=dims, keepdim=True)
        if kind == "wmax":
            return self.window_max(node)
        raise ValueError(kind)

    def _full(self, t, indices):
        """``t`` expanded along ``indices`` (a summand that does not depend on its index counts n times)."""
        shape = list(t.shape)
        for i in indices:
            shape[self.order.index(i)] = self.ranges[i]
        return t.expand(shape)

    def window_max(self, node):
        window = node[2]
        value = self._full(self.ev(node[1]), window)
        valid = torch.ones([1] * len(self.order), dtype=torch.bool)
        for read in _reads(node[1], []):
            if any(_factors(a) & set(window) for a in read[2]):
                valid = valid & self.read(read)[1]
        value = torch.where(valid, value, torch.tensor(float("-inf"), dtype=value.dtype))
        pos = [self.order.index(i) for i in window]
        rest = [d for d in range(len(self.order)) if d not in pos]
        moved = value.permute(rest + pos)
        flat = moved.reshape(*moved.shape[:len(rest)], -1)
        best = torch.max(flat, dim=-1).values
        best = best.reshape(*best.shape, *[1] * len(pos))
        inverse = [0] * len(self.order)
        for n, d in enumerate(rest + pos):
            inverse[d] = n
        return best.permute(inverse)

    def define(self, indices, expr):
        """The value of ``name[indices] = expr`` as a tensor over ``indices``, in their order."""
        t = self.ev(expr)
        t = self._full(t, indices)
        others = [d for d, i in enumerate(self.order) if i not in indices]
        t = t.sum(dim=others, keepdim=True) if others else t  # every other axis has size 1
        t = t.reshape([self.ranges[i] if i in indices else 1 for i in self.order])
        return t.permute([self.order.index(i) for i in indices] + others).reshape(
            [self.ranges[i] for i in indices])

    def run(self):
        for let in self.spec["lets"]:
            self.values[let["name"]] = self.define(let["indices"], let["expr"])
        return self.define(self.spec["output"]["indices"], self.spec["output"]["expr"])


def reference(spec, arrays: dict, scalars: dict | None = None):
    """The forward's output (a torch tensor) from ``arrays`` (torch tensors by name)."""
    return Evaluation(spec, arrays, scalars or {}).run()


def extents(spec, sizes: dict, scalars: dict | None = None) -> dict:
    """The output dimensions for given input dimensions (arrays of those sizes need not exist)."""
    arrays = {t["name"]: torch.empty([sizes[d] for d in t["dims"]]) for t in spec["tensors"]}
    e = Evaluation(spec, arrays, scalars or {})
    return {d: e.sizes[d] for d in spec["output_dims"]}
