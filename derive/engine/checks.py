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
from .ir import affine, free_indices, is_plain
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
    dims = {str(d) for t in forward.tensors.values() for d in t.dims if isinstance(d, sp.Symbol)}
    dimension_names = dims  # ``dims`` is rebound per tensor below
    names = set(forward.tensors) | set(forward.scalars)
    # The kernels also name each gradient d<tensor>, the upstream gradient d<output> and the flags need_d<input>.
    made = {f"d{n}" for n in forward.tensors} | {f"need_d{n}" for n in forward.tensors}
    for name in sorted(names | dims):
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
            if name not in defined:
                later = name in forward.tensors
                fail(f"{name} is {'defined only after this line' if later else 'not declared'}")
            dims = forward.tensors[name].dims
            if len(e.indices) != len(dims):
                fail(f"{name} has {len(dims)} axes but is indexed as {index_text(e)}")
            for axis, (i, dim) in enumerate(zip(e.indices, dims)):
                if i.is_Integer:
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
                if sp.simplify(i.upper + 1 - dim) != 0:
                    fail(f"inconsistent shapes: {i} ranges over {i.upper + 1} but axis {axis} of {name} has size {dim}")
        for f in d.expr.atoms(AppliedUndef):
            fail(f"{f.func} is not a function the engine knows")
        free, lhs = free_indices(d.expr), set(d.indices)
        if free - lhs:
            extra = ", ".join(sorted(map(str, free - lhs)))
            fail(f"index {extra} is free on the right but not on the left (sum over it or put it on the left)")
        if lhs - free:
            missing = ", ".join(sorted(map(str, lhs - free)))
            fail(f"free index {missing} of the left-hand side does not appear on the right")
        defined.add(d.tensor.name)
    forward.derived.update(extents.solve(forward))
    # Every size a kernel computes with comes from an argument's shape or is derived from the reads.
    given = {d for t in forward.arguments for d in t.dims if isinstance(d, sp.Symbol)} | set(forward.derived)
    for d in forward.definitions:
        for dim in d.tensor.dims:
            if isinstance(dim, sp.Symbol) and dim not in given:
                raise DeriveError(forward.name, "check", f"{index_text(d.lhs)} = {index_text(d.expr)}",
                                  f"dimension {dim} is the size of no argument (declare it with "
                                  "output_dims(...) when the reads determine it)")


def check_derivative(forward, gradient) -> None:
    """The derivative must be something a kernel can compute."""
    bad = gradient.expr.atoms(*NOT_DIFFERENTIABLE)
    if bad:
        culprit = sorted(bad, key=str)[0]
        inner = culprit.expr if isinstance(culprit, sp.Derivative) else culprit
        raise DeriveError(forward.name, "differentiate", inner,
                          f"cannot differentiate this with respect to {gradient.tensor.name} (SymPy gives {culprit})")
