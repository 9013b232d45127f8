"""Common subexpressions, computed once per kernel.

Two occurrences are the same computation when they agree up to a renaming of
their free indices over the same ranges: ``exp(X_sk − m_s)`` inside
``Z_s = Σ_k exp(X_sk − m_s)`` and ``exp(X_sc − m_s)`` in ``Y_sc = exp(X_sc − m_s)/Z_s``
are one array. The largest repeated computation is taken first:

- when it is already the whole right-hand side of an earlier statement, later
  occurrences read that statement's result;
- otherwise it becomes a new statement ``tmpN`` placed before its first use.

This repeats until nothing is computed twice. Only arithmetic on arrays
counts: sizes and scalar hyper-parameters are Python numbers.
"""
from __future__ import annotations

import sympy as sp

from .ir import AtMax, MaxOver, Statement, canonical, element, extent, gathered, natural_order

# Node types worth computing once.
_WORK = (sp.Add, sp.Mul, sp.Pow, sp.Function, sp.Sum, sp.Piecewise, MaxOver)


def _is_work(e) -> bool:
    if not isinstance(e, _WORK) or not isinstance(e, sp.Expr):
        return False
    if not e.has(sp.Indexed):
        return False  # arithmetic on Python numbers
    if isinstance(e, sp.Mul) and len(e.args) == 2 and e.args[0].is_Number and isinstance(e.args[1], sp.Indexed):
        return False  # -X, 2 X: cheaper than a temporary
    if isinstance(e, sp.KroneckerDelta) and any(gathered(a) for a in e.args):
        return False  # δ(q, y_p) stays in its sum, which routes it (a scatter-add, not a dense one-hot array)
    return True


def _nodes(e):
    """Every sub-expression, but none inside an arg-max: the printer reads that whole (a scatter)."""
    if isinstance(e, AtMax):
        return
    yield e
    for a in e.args:
        yield from _nodes(a)


def _occurrences(statements):
    """canonical form -> [(statement position, expression, its free indices in canonical order)]."""
    found = {}
    for n, st in enumerate(statements):
        for node in _nodes(st.rhs):
            if _is_work(node):
                key, order = canonical(node)
                found.setdefault(key, []).append((n, node, order))
    return found


def _fresh(taken: set, prefix="tmp"):
    n = 1
    while f"{prefix}{n}" in taken:
        n += 1
    taken.add(f"{prefix}{n}")
    return f"{prefix}{n}"


def eliminate_common_subexpressions(statements, taken: set):
    statements = list(statements)
    taken = set(taken) | {st.name for st in statements}
    for _ in range(100):  # each round removes one repeated computation
        found = _occurrences(statements)
        repeated = [(key, occ) for key, occ in found.items() if len(occ) >= 2]
        if not repeated:
            break
        key, occ = max(repeated, key=lambda kv: (sp.count_ops(kv[0]), -kv[1][0][0], -len(str(kv[0]))))
        first = min(n for n, _, _ in occ)
        # An earlier statement computing exactly this (over its own free indices) is reused.
        serves = {statements[n].serves for n, _, _ in occ}
        # A statement run only for one gradient (``if need_dX``) may not feed one that always runs.
        owner = next((n for n in range(first + 1)
                      if canonical(statements[n].rhs)[0] == key
                      and set(canonical(statements[n].rhs)[1]) == set(statements[n].indices)
                      and (statements[n].serves is None or serves == {statements[n].serves})), None)
        if owner is not None:
            source = statements[owner]
            _, src_order = canonical(source.rhs)
            positions = [src_order.index(i) for i in source.indices]
            lhs_base = source.lhs.base if isinstance(source.lhs, sp.Indexed) else source.lhs

            def make(order, positions=positions, lhs_base=lhs_base):
                return element(lhs_base, [order[p] for p in positions])
            skip = owner
        else:
            name = _fresh(taken)
            _, order0 = canonical(occ[0][1])
            lhs = natural_order(occ[0][1], order0)  # laid out as what it is computed from
            positions = [order0.index(i) for i in lhs]
            base = sp.IndexedBase(name, shape=tuple(extent(i) for i in lhs) or None, real=True)
            statements.insert(first, Statement(element(base, lhs), occ[0][1],
                                               serves.pop() if len(serves) == 1 else None))

            def make(order, base=base, positions=positions):
                return element(base, [order[p] for p in positions])
            skip = first
        new = []
        for n, st in enumerate(statements):
            if n == skip:
                new.append(st)
                continue

            def matches(e):
                return _is_work(e) and canonical(e)[0] == key

            rhs = st.rhs.replace(matches, lambda e: make(canonical(e)[1]))
            new.append(st.with_rhs(rhs))
        if new == statements:
            break
        statements = new
    return statements
