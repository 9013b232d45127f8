"""Checks on a forward before (and a derivative after) differentiation.

Every problem is one ``DeriveError`` naming the module, the expression and
what is wrong, so the command line can print one line instead of a SymPy
traceback.
"""
from __future__ import annotations

import keyword

import sympy as sp
from sympy.core.function import AppliedUndef

from . import extents
from .errors import DeriveError
from .ir import affine, free_indices, is_plain, part_span
from .text import index_text

# Names the kernels' own code uses: the modules they call through, ``into``, and the builtins they call. A tensor,
# scalar or dimension may not take one (nor a Python keyword, nor a name starting with _, as the helpers' do).
RESERVED = frozenset({"np", "torch", "math", "numbers", "scipy", "into", "max", "min", "abs", "isinstance",
                      "ValueError"})

# Results SymPy gives for what it cannot differentiate (or what no kernel can compute).
NOT_DIFFERENTIABLE = (sp.Derivative, sp.Subs, sp.DiracDelta, AppliedUndef)


def check_forward(forward) -> None:
    """Declared tensors and indices, matching shapes, free indices the same on both sides."""
    defined = {t.name for t in forward.arguments}
    outputs = forward.outputs
    line = lambda d: f"{index_text(d.lhs)} = {index_text(d.expr)}"
    if not outputs:
        raise DeriveError(forward.name, "check", line(forward.definitions[-1]),
                          "the forward declares no output (declare it with forward.output(name, indices, expr))")
    if forward.jacobian and len(outputs) > 1:
        raise DeriveError(forward.name, "check", line(outputs[1]),
                          f"the full Jacobian (jacobian = True) is derived for one output, and this forward has "
                          f"{len(outputs)}")
    after = forward.definitions[forward.definitions.index(outputs[-1]) + 1:]
    if after:
        raise DeriveError(forward.name, "check", line(after[0]),
                          "this let comes after the last output, so no output reads it (declare lets before "
                          "the outputs that read them)")
    scalar_symbols = {s.symbol for s in forward.scalars.values()}
    dims = {str(x) for t in forward.tensors.values() for d in t.dims
            for x in sp.sympify(d).free_symbols - scalar_symbols}
    dimension_names = dims  # ``dims`` is rebound per tensor below
    names = set(forward.tensors) | set(forward.scalars)
    # The kernels also name each gradient d<tensor>, the upstream gradient d<output> and the flags need_d<input>.
    made = {forward.gradient_name(n) for n in forward.tensors} | {forward.upstream_name(o.tensor.name)
                                                                   for o in forward.outputs}
    made |= {f"need_{forward.gradient_name(n)}" for n in forward.tensors}
    for name in sorted((names - forward.lifted) | dims):
        if not name.isidentifier():
            raise DeriveError(forward.name, "check", name, "a name must be a Python identifier")
        if name in RESERVED or name in made or keyword.iskeyword(name) or name.startswith("_"):
            raise DeriveError(forward.name, "check", name, f"this name is reserved in the kernels "
                                                             f"({', '.join(sorted(RESERVED))}, d<tensor>, "
                                                             f"need_d<tensor>, Python keywords, names starting "
                                                             f"with _): rename it")
    if dims & names:
        clash = sorted(dims & names)[0]
        raise DeriveError(forward.name, "check", clash, "a dimension and a tensor or scalar share this name")
    for d in forward.definitions:
        where = f"{index_text(d.lhs)} = {index_text(d.expr)}"

        def fail(problem):
            raise DeriveError(forward.name, "check", where, problem)

        for i in d.indices:
            if not isinstance(i, sp.Idx):
                fail(f"left-hand index {i} is not declared (declare it with indices(...))")
        if len(set(d.indices)) != len(d.indices):
            fail("an index repeats on the left-hand side")
        for e in sorted(d.expr.atoms(sp.Indexed), key=str):
            name = str(e.base.label)
            if name == d.tensor.name:
                fail(f"{name} reads itself (a recurrence inside one forward is not expressible: derive one step, "
                     "a cell, and run it over time, as runtime/nets/recurrent.py does)")
            if name not in defined:
                later = name in forward.tensors
                fail(f"{name} is {'defined only after this line' if later else 'not declared'}")
            dims = forward.tensors[name].dims
            if len(e.indices) != len(dims):
                fail(f"{name} has {len(dims)} axes but is indexed as {index_text(e)}")
            for axis, (i, dim) in enumerate(zip(e.indices, dims)):
                if i.is_Integer:
                    continue
                if i.has(sp.Indexed):
                    problem = _gather_problem(forward, e, axis, i, dim)
                    if problem:
                        fail(problem)
                    continue
                if not is_plain(i):
                    # An index expression: affine in declared indices with integer coefficients.
                    # Indices, integer hyper-parameters and dimensions (X[s, D − 1 − j]) may appear.
                    undeclared = sorted(str(s) for s in i.free_symbols if not isinstance(s, sp.Idx)
                                        and s.name not in forward.scalars and s.name not in dimension_names)
                    if undeclared:
                        fail(f"index {undeclared[0]} in {index_text(e)} is not declared (declare it with indices(...))")
                    if affine(i) is None:
                        fail(f"index expression {index_text(i)} in {index_text(e)} is not an integer combination "
                             "of indices (write σ·h + i − p with integer σ, p)")
                    continue
                if not isinstance(i, sp.Idx):
                    fail(f"index {i} in {index_text(e)} is not declared (declare it with indices(...))")
                # A range that differs from the axis by an integer of known sign reads part of it (j over D − 1
                # on D, P on 2P), or past its end (zero there); any other difference is a mistake.
                if part_span(i.upper + 1, dim) is None:
                    fail(f"inconsistent shapes: {i} ranges over {i.upper + 1} but axis {axis} of {name} has size {dim}")
        for f in d.expr.atoms(AppliedUndef):
            fail(f"{f.func} is not a function the engine knows")
        for e in _value_reads(d.expr):
            if forward.tensors[str(e.base.label)].role == "index":
                fail(f"{index_text(e)} reads the index array {e.base.label} as a value (an index array is read "
                     "only as an index of another tensor: X[s, y[s]])")
        free, lhs = free_indices(d.expr), set(d.indices)
        if free - lhs:
            extra = ", ".join(sorted(map(str, free - lhs)))
            fail(f"index {extra} is free on the right but not on the left (sum over it or put it on the left)")
        if lhs - free and d.expr.is_number:
            fail("the right-hand side is the constant "
                 f"{d.expr} (SymPy simplified it as it was written: X − X is 0): nothing to differentiate")
        if lhs - free:
            missing = ", ".join(sorted(map(str, lhs - free)))
            fail(f"free index {missing} of the left-hand side does not appear on the right")
        defined.add(d.tensor.name)
    forward.derived.update(extents.solve(forward))
    # Every size a kernel computes with comes from an argument's shape, or is derived or declared.
    given = extents.sizable(forward) | {s.symbol for s in forward.scalars.values() if s.symbol.is_integer}
    for d in forward.definitions:
        for dim in d.tensor.dims:
            for sym in sorted(sp.sympify(dim).free_symbols - given, key=str):
                raise DeriveError(forward.name, "check", f"{index_text(d.lhs)} = {index_text(d.expr)}",
                                  f"dimension {sym} is the size of no argument (declare it with "
                                  "output_dims(...) when the reads determine it)")


def _gather_problem(forward, e, axis, i, dim):
    """What is wrong with the index ``i`` on ``axis`` (of size ``dim``) of the read ``e``, when it holds a tensor
    read; None for a gather ``X[s, y[s]]``: an index array read at declared indices, its values over that axis."""
    where = index_text(e)
    if not isinstance(i, sp.Indexed):
        return f"{index_text(i)} in {where}: an index taken from an array is read as it is (X[s, y[s]])"
    source = forward.tensors.get(str(i.base.label))
    if source is None or source.role != "index":
        return (f"{index_text(i)} in {where}: {i.base.label} is not an index array (declare it with "
                "index_array(name, *dims, of=extent))")
    if len(i.indices) != len(source.dims):
        return f"{i.base.label} has {len(source.dims)} axes but is indexed as {index_text(i)}"
    for j, size in zip(i.indices, source.dims):
        if not isinstance(j, sp.Idx):
            return f"{index_text(i)} in {where}: an index array is read at declared indices"
        if sp.simplify(j.upper + 1 - size) != 0:
            return f"inconsistent shapes: {j} ranges over {j.upper + 1} but {i.base.label} has size {size} there"
    if sp.simplify(source.of - dim) != 0:
        return (f"{index_text(i)} in {where}: {i.base.label} holds values in 0..{index_text(source.of - 1)} but "
                f"axis {axis} of {e.base.label} has size {dim}")
    if any(not is_plain(k) for n, k in enumerate(e.indices) if n != axis and not isinstance(k, sp.Indexed)):
        return f"{where}: a read through an index array takes plain indices on its other axes"
    shape = forward.tensors[str(e.base.label)].dims
    for n, k in enumerate(e.indices):
        if isinstance(k, sp.Idx) and (sp.expand(k.upper + 1 - shape[n])).is_positive:
            return (f"{where}: {k} ranges past the end of axis {n} of {e.base.label} (a read through an index "
                    "array reads inside its tensor)")
    return None


def _value_reads(expr) -> list:
    """The tensor reads of ``expr`` used as values: not those inside another read's indices, nor an index array
    inside a delta (``δ(q, y_p)``, the one-hot row of a label: a gradient of a gather, read again at second order)."""
    out, stack = [], [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, sp.Indexed):
            out.append(e)
        elif isinstance(e, sp.KroneckerDelta):
            stack += [a for a in e.args if not isinstance(a, sp.Indexed)]
        elif isinstance(e, sp.Basic):
            stack += e.args
    return out


def check_derivative(forward, gradient) -> None:
    """The derivative must be something a kernel can compute."""
    bad = gradient.expr.atoms(*NOT_DIFFERENTIABLE)
    if bad:
        culprit = sorted(bad, key=str)[0]
        inner = culprit.expr if isinstance(culprit, sp.Derivative) else culprit
        raise DeriveError(forward.name, "differentiate", inner,
                          f"cannot differentiate this with respect to {gradient.tensor.name} (SymPy gives {culprit})")
