"""Lowering: a derivation becomes kernels as data (``ir.Kernel``), validated.

One calling convention for every module:

    <m>_forward(*ARGUMENTS, **scalars)             -> RETURNS       (the outputs, then what the backward needs)
    <m>_backward(*UPSTREAMS, **SAVED, **scalars)   -> GRADIENTS

The upstream gradient is ``dY`` for a layer and the scalar ``dL`` (default 1)
for a loss; one per output, in order, for a module with several (``dh, dc``:
each defaults to None, meaning zero). ``SAVED`` are the tensors the backward
reads (arguments, outputs, intermediates the forward returns), passed by
keyword. A loss's backward multiplies each gradient by ``dL``, which is the
chain rule through the scalar, so a loss's backward never recomputes its forward.
"""
from __future__ import annotations

import sympy as sp

from .cse import eliminate_common_subexpressions
from .differentiate import Partial, Total
from .errors import DeriveError, stage
from .ir import (Array, AtMax, Kernel, MaxOver, MaxWithZeros, Statement, extent, free_indices, gathered,
                 indexed_bases, part_span, shifted, window_key)
from .normal_forms import to_piecewise
from .numerics import Context, stabilise
from .recognise import pooling
from .text import index_text


def validate(kernel: Kernel, module: str = "") -> Kernel:
    """No derivative left, every operand defined before use, index ranges match shapes."""
    known = {a.name: a.dims for a in kernel.given()}

    def fail(st, problem):
        where = f"{kernel.name}: {index_text(st.lhs)} = {index_text(st.rhs)}" if st is not None else kernel.name
        raise DeriveError(module or kernel.name, "lower", where, problem)

    for st in kernel.statements:
        if st.rhs.has(sp.Derivative, sp.Subs, sp.Integral) or any(
                isinstance(f, (Partial, Total)) for f in sp.preorder_traversal(st.rhs)):
            fail(st, "an unevaluated derivative is left (a kernel never calls autograd)")
        bad = [f for f in st.rhs.atoms(sp.Function) if isinstance(f, sp.core.function.AppliedUndef)]
        if bad:
            fail(st, f"uses an undefined function {bad[0].func}")
        for e in sorted(st.rhs.atoms(sp.Indexed), key=str):
            name = str(e.base.label)
            if name not in known:
                fail(st, f"uses {name}, which is neither an argument nor computed before")
            dims = known[name]
            if len(dims) != len(e.indices):
                fail(st, f"{index_text(e)} has {len(e.indices)} indices but {name} has {len(dims)} axes")
            for i, d in zip(e.indices, dims):
                # A range other than the axis's by a whole number reads part of it, zero past its end (a view).
                if isinstance(i, sp.Idx) and sp.simplify(extent(i) - d) != 0 and not (
                        part_span(extent(i), d) is not None and (shifted(e) or any(map(gathered, e.indices)))):
                    fail(st, f"index {i} of {index_text(e)} ranges over {extent(i)}, but that axis of {name} is {d}")
        free = free_indices(st.rhs)
        if not free <= set(st.indices):
            fail(st, f"leaves the indices {', '.join(sorted(map(str, free - set(st.indices))))} free")
        if len(set(st.indices)) != len(st.indices):
            fail(st, "an index repeats on the left")
        known[st.name] = tuple(extent(i) for i in st.indices)
    for r in kernel.results:
        if r not in known:
            fail(None, f"returns {r}, which is never computed")
    return kernel


# -- lowering -------------------------------------------------------------

def _live(statements, results):
    """Drop statements no result depends on."""
    need, kept = set(results), []
    for st in reversed(statements):
        if st.name in need:
            kept.append(st)
            need |= indexed_bases(st.rhs)
    return list(reversed(kept))


def _heaviside(statements):
    """A Heaviside left in a forward prints as a select: 0 at the tie, as the derivation reads it."""
    return [st.with_rhs(st.rhs.replace(lambda e: isinstance(e, sp.Heaviside), to_piecewise))
            if st.rhs.has(sp.Heaviside) else st for st in statements]


def _names(forward) -> set:
    return set(forward.tensors) | set(forward.scalars) | {
        str(d) for t in forward.tensors.values() for d in t.dims if isinstance(d, sp.Symbol)}


def _numerics(forward, kernel_name: str, statements, context: Context):
    with stage(forward.name, "numerics", kernel_name):
        return stabilise(_heaviside(statements), context)


def _finish(forward, kernel_name: str, statements, results, taken: set):
    """Common subexpressions and dead code: the statements a kernel executes."""
    statements = _live(statements, results)
    with stage(forward.name, "lower", kernel_name):
        statements = eliminate_common_subexpressions(statements, taken)
    return _live(statements, results)


def forward_kernel(forward, returned=(), statements=None) -> Kernel:
    """``statements``: the forward's definitions after the numerics pass (made here when not given)."""
    name = f"{forward.name}_forward"
    if statements is None:
        statements = _numerics(forward, name, [Statement(d.lhs, d.expr) for d in forward.definitions],
                                Context(names=_names(forward), true_values={o.tensor.name for o in forward.outputs}))
    results = [*(o.tensor.name for o in forward.outputs), *returned]
    statements = _finish(forward, name, statements, results, _names(forward))
    args = [Array(t.name, t.dims, of=t.of) for t in forward.arguments]
    return validate(Kernel(name, args, list(forward.scalars.values()), statements, results,
                           extents=dict(forward.derived)), forward.name)


def _index_wilds(expr):
    return {i: sp.Wild(f"w_{i.label}", properties=[lambda e: isinstance(e, sp.Idx)])
            for i in sorted(expr.atoms(sp.Idx), key=str)}


def _reuse(gradients, optional=()):
    """Write each gradient in terms of the others where one is a reduction inside another.

    Batch norm: ``Σ_s dY_sq`` inside dX is dβ_q, ``Σ_s dY_sq X̂_sq`` is dγ_q.
    Returns (statement order, rewritten expressions).
    """
    exprs = {g.name: g.expr for g in gradients}
    for g in gradients:
        if not (isinstance(g.expr, sp.Sum) and g.indices) or g.name in optional:
            continue  # an optional gradient (``if need_dX``) may not be there to read
        wilds = _index_wilds(g.expr)
        pattern = g.expr.xreplace(wilds)

        def is_match(e, pattern=pattern):
            return isinstance(e, sp.Sum) and e.match(pattern) is not None

        def make(e, g=g, wilds=wilds, pattern=pattern):
            m = e.match(pattern)
            return g.base[tuple(m[wilds[i]] for i in g.indices)]

        for other in gradients:
            # Not one equal to g as a whole (db_hh = db_ih would return one array twice: an in-place update of one
            # gradient would change the other), nor one g already reads.
            if other is not g and other.expr != g.expr and other.name not in {
                    str(b.label) for b in exprs[g.name].atoms(sp.IndexedBase)}:
                exprs[other.name] = exprs[other.name].replace(is_match, make)
    # A gradient that uses another is computed after it.
    order = sorted(gradients, key=lambda g: any(o.name in indexed_bases(exprs[g.name]) for o in gradients))
    return order, exprs


def upstream_arrays(derivation) -> list:
    """``dY`` for each output Y, in order; for a single scalar output (a loss L) the scalar ``dL``; none for
    a Jacobian."""
    forward = derivation.forward
    if forward.jacobian:
        return []
    return [Array(forward.upstream_name(o.tensor.name), o.tensor.dims) for o in forward.outputs]


def backward_kernel(derivation, forward_statements, context: Context) -> Kernel:
    """The backward; it may read any argument or output of the forward and any value its statements compute."""
    forward = derivation.forward
    name = f"{forward.name}_backward"
    inputs = [g.name for g in derivation.gradients if g.tensor.role == "input"]
    optional = {n: f"need_{n}" for n in inputs} if len(derivation.gradients) > len(inputs) else {}
    order, exprs = _reuse(derivation.gradients, optional)
    upstreams = upstream_arrays(derivation)
    # A single loss: the chain rule through its scalar dL (with several outputs each upstream is in the derivation).
    scale = sp.IndexedBase(upstreams[0].name, real=True) if forward.scalar_output and upstreams else 1
    up_names = {u.name for u in upstreams}
    gradients = [g.name for g in derivation.gradients]
    # The shared lets' gradients first, each once, in the order derived (the last let's first); a loss's dL scales
    # the tensors' gradients only, once.
    shared = [Statement(a.lhs, a.expr, a.name) for a in derivation.adjoints]
    statements = _numerics(forward, name, shared + [Statement(g.lhs, scale * exprs[g.name], g.name) for g in order],
                           context)
    computed = {st.name: tuple(extent(i) for i in st.indices) for st in forward_statements}
    taken = _names(forward) | set(computed) | set(gradients) | up_names | {a.name for a in derivation.adjoints}
    statements = _finish(forward, name, statements, gradients, taken)
    names = set().union(*[indexed_bases(s.rhs) for s in statements]) - {s.name for s in statements}
    names -= up_names
    # A gradient needs its tensor's sizes even when its value does not (dS = I for tr S).
    dims = {**{n: t.dims for n, t in forward.tensors.items()}, **computed}
    carried = {d for n in names if n in dims for d in dims[n]}
    if len(upstreams) > 1:
        # Any upstream may be omitted (zero): each one's sizes come from what the backward reads, the output
        # itself where nothing else carries them.
        for o in forward.outputs:
            if not set(o.tensor.dims) <= carried:
                names.add(o.tensor.name)
                carried |= set(o.tensor.dims)
    else:
        carried |= {d for u in upstreams for d in u.dims}
    names |= {g.tensor.name for g in derivation.gradients if not set(g.tensor.dims) <= carried}
    unknown = names - set(dims)
    if unknown:
        raise DeriveError(forward.name, "lower", name, f"reads {sorted(unknown)[0]}, which the forward does not compute")
    # Arguments first, in declaration order, then what the forward computes, in its order.
    saved = [t.name for t in forward.arguments if t.name in names]
    saved += [st.name for st in forward_statements if st.name in names and st.name not in saved]
    args = [Array(n, dims[n], of=getattr(forward.tensors.get(n), "of", None)) for n in saved]
    return validate(Kernel(name, args, list(forward.scalars.values()), statements, gradients, optional, upstreams,
                           1.0 if forward.scalar_output and upstreams else None, dict(forward.derived)),
                    forward.name)


def kernels(derivation) -> list:
    """The forward, backward and variant kernels of one module.

    The forward's statements go through the numerics pass first, so the
    backward reads what they compute as they compute it (a shifted exponential
    sum together with its maximum). The forward then returns its output, what
    the backward reads, and the intermediates the module marks ``returned``.
    """
    forward = derivation.forward
    # Names the numerics pass adds never clash with the user's; what the forward hands out is never stored shifted.
    outputs = {o.tensor.name for o in forward.outputs}
    context = Context(names=_names(forward), true_values=outputs | set(forward.returned))
    statements = _numerics(forward, f"{forward.name}_forward",
                           [Statement(d.lhs, d.expr) for d in forward.definitions], context)
    backward = backward_kernel(derivation, statements, context)
    read = {a.name for a in backward.arguments}
    returned = [st.name for st in statements
                if st.name not in outputs and (st.name in read or st.name in forward.returned)]
    kernels_ = [forward_kernel(forward, returned, statements), backward]
    share_arg_maxima(*kernels_, _names(forward))
    for v in forward.variants.values():
        kernels_.append(forward_kernel(v))
    return kernels_


def share_arg_maxima(forward: Kernel, backward: Kernel, taken: set):
    """A pool's arg-max, computed by the forward beside its maximum and saved, so the backward routes each
    gradient through it instead of searching every window again.

    Where a forward statement is a max over a pooling window (``recognise.pooling``, laid out as the pool's
    output) and the backward reads the arg-max of the same window (an ``AtMax`` whose maximum is the same up to
    the names of its indices, ``ir.window_key``), the forward also returns ``<name>_argmax`` and the backward takes it.
    """
    pooled = {}
    for st in forward.statements:
        if isinstance(st.rhs, MaxOver) and not isinstance(st.rhs, MaxWithZeros):
            pool = pooling(st.rhs.body, st.rhs.over)
            if pool is not None and pool.lead == st.indices:
                pooled[window_key(st.rhs.body, st.rhs.over)] = st
    taken = set(taken) | {st.name for k in (forward, backward) for st in k.statements} | {
        a.name for a in backward.arguments}
    for st in backward.statements:
        for a in sorted(st.rhs.atoms(AtMax), key=str):
            key = window_key(a.body, a.over)
            if key not in pooled or key in backward.arg_maxima:
                continue
            source = pooled[key]
            name, n = f"{source.name}_argmax", 1
            while name in taken:
                n += 1
                name = f"{source.name}_argmax_{n}"
            taken.add(name)
            forward.arg_maxima[source.name] = name
            forward.results.append(name)
            backward.arguments.append(Array(name, tuple(extent(i) for i in source.indices), index=True))
            backward.arg_maxima[key] = name


def hvp_kernel(derivation) -> Kernel:
    """``<m>_hvp``: the backward of ``derivation`` (of a second-order forward, ``second.second_order``) with the
    lets it reads computed first, so that it takes the first-order arguments and upstreams alone:

        <m>_hvp(*HVP_DIRECTIONS, **{n: arrays[n] for n in HVP_ARGUMENTS}, **scalars) -> HVP_RESULTS
    """
    forward = derivation.forward
    name = f"{forward.name}_hvp"
    outputs = {o.tensor.name for o in forward.outputs}
    context = Context(names=_names(forward), true_values=outputs)
    statements = _numerics(forward, name, [Statement(d.lhs, d.expr) for d in forward.definitions], context)
    backward = backward_kernel(derivation, statements, context)
    computed = {st.name for st in statements}
    read = [a.name for a in backward.arguments if a.name in computed]
    taken = _names(forward) | {st.name for st in backward.statements} | {a.name for a in backward.arguments} | {
        u.name for u in backward.upstreams}
    lets = _finish(forward, name, statements, read, taken)
    args = [Array(t.name, t.dims, of=t.of) for t in forward.arguments]
    kernel = Kernel(name, args, list(forward.scalars.values()), lets + backward.statements, backward.results,
                    backward.optional, backward.upstreams, None, dict(forward.derived))
    # The first order's upstreams, which its backward lets the caller omit when there are several: here too.
    firsts = [n for n in forward.upstream_inputs if n in {a.name for a in args}]
    kernel.zero_arguments = tuple(firsts) if len(firsts) > 1 else ()
    return validate(kernel, forward.name)
