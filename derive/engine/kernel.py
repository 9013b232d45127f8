"""Kernels as data: the intermediate representation between mathematics and code.

A ``Kernel`` lists its array arguments (with symbolic shapes), scalar
hyper-parameters, statements ``lhs[indices] = rhs`` whose right-hand sides are
SymPy expressions (contractions are ``Sum`` of products, elementwise work is
everything else), and the names it returns. ``validate`` checks a kernel
before any printer sees it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .numerics import MaxOver, stabilise


class KernelError(ValueError):
    """A kernel that cannot be emitted; the message names the kernel and the problem."""


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
        base = self.lhs.base if isinstance(self.lhs, sp.Indexed) else self.lhs
        return str(base.label)

    @property
    def indices(self) -> tuple:
        return tuple(self.lhs.indices) if isinstance(self.lhs, sp.Indexed) else ()


@dataclass
class Kernel:
    name: str
    arguments: list           # [Array]
    scalars: list             # [notation.Scalar]
    statements: list          # [Statement]
    results: list            # names returned, in order
    # result name -> keyword flag that turns it off (``need_dX``)
    optional: dict = field(default_factory=dict)

    def dims(self) -> list:
        """Each dimension symbol with the first argument and axis that carries it."""
        seen = {}
        for a in self.arguments:
            for axis, d in enumerate(a.dims):
                if isinstance(d, sp.Symbol) and d not in seen:
                    seen[d] = (a.name, axis)
        return list(seen.items())


def indexed_bases(expr) -> set:
    return {str(e.base.label) for e in expr.atoms(sp.Indexed)} | {
        str(b.label) for b in expr.atoms(sp.IndexedBase) if not any(e.base == b for e in expr.atoms(sp.Indexed))
    }


def validate(kernel: Kernel) -> Kernel:
    """No derivative left, every operand defined before use, index ranges match shapes."""
    known = {a.name: a.dims for a in kernel.arguments}
    where = f"kernel {kernel.name}"
    for st in kernel.statements:
        if st.rhs.has(sp.Derivative, sp.Subs, sp.Integral):
            raise KernelError(f"{where}: {st.name} still holds an unevaluated derivative: {st.rhs}")
        bad = [f for f in st.rhs.atoms(sp.Function) if isinstance(f, sp.core.function.AppliedUndef)]
        if bad:
            raise KernelError(f"{where}: {st.name} uses an undefined function {bad[0]}")
        for e in sorted(st.rhs.atoms(sp.Indexed), key=str):
            name = str(e.base.label)
            if name not in known:
                raise KernelError(f"{where}: {st.name} uses {name}, which is neither an argument nor computed before")
            dims = known[name]
            if len(dims) != len(e.indices):
                raise KernelError(f"{where}: {e} has {len(e.indices)} indices but {name} has {len(dims)} axes")
            for i, d in zip(e.indices, dims):
                if isinstance(i, sp.Idx) and sp.simplify(i.upper + 1 - d) != 0:
                    raise KernelError(f"{where}: index {i} of {e} ranges over {i.upper + 1}, axis of {name} is {d}")
        free = _free(st.rhs)
        if not free <= set(st.indices):
            raise KernelError(f"{where}: {st.name}{list(st.indices)} = {st.rhs} leaves indices {sorted(map(str, free - set(st.indices)))} free")
        if len(set(st.indices)) != len(st.indices):
            raise KernelError(f"{where}: repeated index on the left of {st.lhs}")
        known[st.name] = tuple(i.upper + 1 for i in st.indices)
    for r in kernel.results:
        if r not in known:
            raise KernelError(f"{where}: returns {r}, which is never computed")
    return kernel


def _free(expr) -> set:
    """Indices of ``expr`` that no Sum or MaxOver binds."""
    if isinstance(expr, sp.Idx):
        return {expr}
    if isinstance(expr, sp.Sum):
        return _free(expr.function) - {lim[0] for lim in expr.limits}
    if isinstance(expr, MaxOver):
        return _free(expr.args[0]) - {expr.args[1]}
    if isinstance(expr, sp.Indexed):
        return {i for i in expr.indices if isinstance(i, sp.Idx)}
    out = set()
    for a in expr.args:
        out |= _free(a)
    return out


# -- lowering -------------------------------------------------------------

def _statement(d, serves=None):
    return Statement(d.lhs, d.expr, serves)


def _needed(forward, names) -> list:
    """Definitions needed to compute ``names``, in forward order."""
    need, out = set(names), []
    for d in reversed(forward.definitions):
        if d.tensor.name in need:
            out.append(d)
            need |= indexed_bases(d.expr)
    return list(reversed(out))


def forward_kernel(forward, saved=()) -> Kernel:
    out = forward.out.tensor.name
    statements = stabilise([_statement(d) for d in forward.definitions])
    statements = _live(statements, [out, *saved])
    used = set().union(*[indexed_bases(s.rhs) for s in statements])
    args = [Array(t.name, t.dims) for t in forward.arguments if t.name in used or t.role != "const"]
    return validate(Kernel(f"{forward.name}_forward", args, list(forward.scalars.values()),
                           statements, [out, *saved]))


def _live(statements, results):
    """Drop statements no result depends on."""
    need, kept = set(results), []
    for st in reversed(statements):
        if st.name in need:
            kept.append(st)
            need |= indexed_bases(st.rhs)
    return list(reversed(kept))


def _index_wilds(expr):
    return {i: sp.Wild(f"w_{i.label}", properties=[lambda e: isinstance(e, sp.Idx)])
            for i in sorted(expr.atoms(sp.Idx), key=str)}


def _reuse(gradients):
    """Write each gradient in terms of the others where one is a reduction inside another.

    Batch norm: ``Σ_s dY_sq`` inside dX is dβ_q, ``Σ_s dY_sq X̂_sq`` is dγ_q.
    Returns (statement order, rewritten expressions).
    """
    exprs = {g.name: g.expr for g in gradients}
    for g in gradients:
        if not (isinstance(g.expr, sp.Sum) and g.indices):
            continue
        wilds = _index_wilds(g.expr)
        pattern = g.expr.xreplace(wilds)

        def is_match(e, pattern=pattern):
            return isinstance(e, sp.Sum) and e.match(pattern) is not None

        def make(e, g=g, wilds=wilds, pattern=pattern):
            m = e.match(pattern)
            return g.base[tuple(m[wilds[i]] for i in g.indices)]

        for other in gradients:
            if other is not g:
                exprs[other.name] = exprs[other.name].replace(is_match, make)
    # A gradient that uses another is computed after it.
    order = sorted(gradients, key=lambda g: any(o.name in indexed_bases(exprs[g.name]) for o in gradients))
    return order, exprs


def backward_kernel(derivation, saved) -> Kernel:
    forward = derivation.forward
    order, exprs = _reuse(derivation.gradients)
    referenced = set().union(*[indexed_bases(exprs[g.name]) for g in order])
    recompute = _needed(forward, referenced) if forward.scalar_output else []
    statements = stabilise([_statement(d) for d in recompute]
                           + [Statement(g.lhs, exprs[g.name], g.name) for g in order])
    statements = _live(statements, [g.name for g in derivation.gradients])
    names = set().union(*[indexed_bases(s.rhs) for s in statements]) - {s.name for s in statements}
    args = []
    if derivation.upstream is not None:
        args.append(Array(str(derivation.upstream.label), forward.out.tensor.dims))
    # A gradient needs its tensor's sizes even when its value does not (dS = I for tr S).
    carried = {d for n in names if n in forward.tensors for d in forward.tensors[n].dims}
    if derivation.upstream is not None:
        carried |= set(forward.out.tensor.dims)
    names |= {g.tensor.name for g in derivation.gradients if not set(g.tensor.dims) <= carried}
    args += [Array(t.name, t.dims) for t in forward.tensors.values()
             if t.name in names and t.role in ("input", "param", "const")]
    out_name = forward.out.tensor.name
    if out_name in names:
        if derivation.upstream is None:
            raise KernelError(f"{forward.name}: backward of a scalar loss refers to the loss itself")
        args.append(Array(out_name, forward.out.tensor.dims))
    args += [Array(n, forward.tensors[n].dims) for n in saved if n in names]
    inputs = [g.name for g in derivation.gradients if g.tensor.role == "input"]
    optional = {n: f"need_{n}" for n in inputs} if len(derivation.gradients) > len(inputs) else {}
    return validate(Kernel(f"{forward.name}_backward", args, list(forward.scalars.values()),
                           statements, [g.name for g in derivation.gradients], optional))


def saved_for_backward(derivation) -> list:
    """Intermediates a backward refers to; the forward returns them (not for scalar losses, which recompute)."""
    forward = derivation.forward
    if forward.scalar_output:
        return []
    names = set().union(*[indexed_bases(g.expr) for g in derivation.gradients])
    return [d.tensor.name for d in forward.intermediates if d.tensor.name in names]


def kernels(derivation) -> list:
    """The forward, backward and variant kernels of one module."""
    saved = saved_for_backward(derivation)
    returned = [d.tensor.name for d in derivation.forward.intermediates
                if d.tensor.name in saved or d.tensor.name in derivation.forward.returned]
    out = [forward_kernel(derivation.forward, returned), backward_kernel(derivation, saved)]
    for v in derivation.forward.variants.values():
        out.append(forward_kernel(v))
    return out
