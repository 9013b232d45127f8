"""Kronecker-delta sifting and the normal form of sums.

The one rule this project owns instead of ``Sum.doit`` (which leaves
``Piecewise`` range guards around deltas of ``IndexedBase`` elements)::

    Σ_k δ_kj f(k) = f(j)      when j ranges inside k's range.

A shifted delta, from a read at an index expression (a convolution's
``X[s, c, σh + i − p, …]``), is sifted by solving its integer linear equation
for the summed index::

    Σ_h δ(σh + i − p, u) f(h) = [(u − i + p)/σ ∈ {0..H_o−1}] · f((u − i + p)/σ)

The bracket (``ir.OnGrid``) holds the range and divisibility conditions; a
read of a tensor at that position absorbs it later (reads off the grid are
zero). A shifted delta is solved for the outermost summed index it holds, so
the gradient sums over what the forward summed over (the kernel window), and
reads the upstream gradient dilated by the stride: a transposed convolution.

Around it, sums are kept in a normal form: linear (a sum of terms is split),
factors that do not depend on the summation index are pulled out, and a sum of
a constant is the constant times the range length.
"""
from __future__ import annotations

import sympy as sp

from .ir import AtMax, OnGrid, Sum, affine, extent, gathered, is_plain, part_span, shifted


def _range(i):
    if isinstance(i, sp.Idx) and i.lower is not None:
        return i.lower, i.upper
    return None


def _inside(j, k) -> bool:
    """True when index ``j`` provably takes values inside the range of ``k``."""
    rj, rk = _range(j), _range(k)
    if rj is None or rk is None:
        return False
    return sp.simplify(rj[0] - rk[0]).is_nonnegative and sp.simplify(rk[1] - rj[1]).is_nonnegative


def pull_deltas_out_of_piecewise(expr):
    """Piecewise((δ·a, c), (δ·b, True)) → δ·Piecewise((a, c), (b, True)); a zero branch is divisible by δ."""

    def pull(pw):
        moved = _sum_out_of_select(pw)
        if moved is not pw:
            return Sum(pull(moved.function), *moved.limits)
        factors = None
        for value, _ in pw.args:
            if value == 0:
                continue
            for term in _terms(value) if value.has(sp.KroneckerDelta) else (value,):
                deltas = {f for f in sp.Mul.make_args(term) if isinstance(f, sp.KroneckerDelta)}
                factors = deltas if factors is None else factors & deltas
        common = sp.Mul(*sorted(factors or (), key=sp.default_sort_key))
        rest = sp.Piecewise(*[(sp.Add(*[t / common for t in _terms(v)]) if v != 0 else v, c)
                              for v, c in pw.args], evaluate=False) if factors else pw
        pieces = _split_by_branch(rest)
        if pieces is not None:   # branches hold deltas of their own (max(X[s, j + 1], X_sj)): one select each
            return common * sp.Add(*[pull(p) for p in pieces])
        return common * rest if factors else pw

    return expr.replace(lambda e: isinstance(e, sp.Piecewise), pull)


def _split_by_branch(pw):
    """Piecewise((a + b, c₁), (d, c₂), …) = Piecewise((a, c₁), (0, True)) + Piecewise((b, c₁), (0, True))
    + Piecewise((0, c₁), (d, c₂), (0, True)) + …: each term of each branch in a select of its own (the earlier
    conditions kept, as zero branches, so that the first true one still decides). Only where a branch holds a
    delta and there is more than one term: each delta can then leave its select. None otherwise."""
    live = [(n, v) for n, (v, _) in enumerate(pw.args) if v != 0]
    terms = [(n, t) for n, v in live for t in _terms(v)]
    if len(terms) < 2 or not any(t.has(sp.KroneckerDelta) for _, t in terms):
        return None
    out = []
    for n, t in terms:
        branches = [(sp.S.Zero, c) for _, c in pw.args[:n]] + [(t, pw.args[n].cond)]
        # Not evaluated: SymPy would distribute the conditions' and/or, exponentially in their number.
        out.append(sp.Piecewise(*branches, (sp.S.Zero, True), evaluate=False) if pw.args[n].cond != sp.true
                   else sp.Piecewise(*branches, evaluate=False))
    return out


def _sum_out_of_select(pw):
    """Piecewise((c·Σ_a g, C), (0, True)) → Σ_a Piecewise((c·g, C), (0, True)) for each factor sum whose body
    holds a delta: the delta may then leave the select and be sifted by an enclosing sum (the gradient through
    ReLU(conv(X)) reaches X this way). A moved index that anything else in the select names is renamed first.
    Returns ``pw`` itself when no such sum is there."""
    live = [v for v, _ in pw.args if v != 0]
    if len(live) != 1 or not isinstance(live[0], (sp.Mul, sp.Sum)):
        return pw
    factors = sp.Mul.make_args(live[0])
    sums = [f for f in factors if isinstance(f, sp.Sum) and f.function.has(sp.KroneckerDelta)]
    if not sums:
        return pw
    taken = {str(i.label) for i in pw.atoms(sp.Idx)}
    body, limits = sp.Mul(*[f for f in factors if not any(f is s for s in sums)]), []
    for inner in sums:
        elsewhere = [c for _, c in pw.args] + [f for f in factors if f is not inner]
        renames = {lim[0]: _fresh_index(lim[0], taken) for lim in inner.limits
                   if any(e.has(lim[0]) for e in elsewhere)}
        body *= inner.function.xreplace(renames)
        limits += [(renames.get(lim[0], lim[0]), *lim[1:]) for lim in inner.limits]
    return Sum(sp.Piecewise(*[(body if v is live[0] else v, c) for v, c in pw.args]), *limits)


def _terms(body):
    """The additive terms of ``body`` with products distributed over sums."""
    expanded = sp.expand(body, power_exp=False, power_base=False, log=False, multinomial=False)
    return sp.Add.make_args(expanded)


def _shifted(delta) -> bool:
    return not all(is_plain(a) or gathered(a) for a in delta.args)


def _solve(delta, k):
    """(value of k, guard) that sifts ``delta`` over k, or None."""
    a, b = delta.args
    if gathered(a) or gathered(b):
        # Σ_k δ(k, y_s) f(k) = f(y_s): the checks hold an index array's values to the extent of the axis it
        # indexes, and a delta pairs it with an index over that axis.
        g, other = (a, b) if gathered(a) else (b, a)
        return (g, sp.S.One) if other == k and k not in g.free_symbols else None
    if not _shifted(delta):
        j = b if a == k else a if b == k else None
        if j is None or j == k:
            return None
        if _inside(j, k):
            return j, sp.S.One
        # k over part of j's range (a read of part of an axis): the bracket keeps j inside k's range.
        span = part_span(extent(k), extent(j)) if isinstance(j, sp.Idx) else None
        return (j, OnGrid(j, extent(k))) if span is not None and span.is_positive else None
    # δ(e/q, u) = δ(e, q·u): solve the numerator's equation.
    num = sp.fraction(sp.together(a - b))[0]
    diff = affine(num)
    if diff is None or diff.denom != 1:
        return None
    c = diff.coeff(k)
    if c == 0:
        return None
    value = sp.expand(-(num - c * k)) / c
    if isinstance(value, sp.Idx) and _inside(value, k):
        return value, sp.S.One
    return value, OnGrid(value, k.upper + 1)


def _eligible(delta, k, outer) -> bool:
    """A shifted delta waits for an enclosing sum over one of its other indices (solved outermost first)."""
    if k not in delta.free_symbols:
        return False
    return not (_shifted(delta) and (delta.free_symbols - {k}) & outer)


def _waiting(expr, k, outer) -> bool:
    """True if ``expr`` (through products, sums and nested sums only) holds a delta sifted over k."""
    if isinstance(expr, sp.KroneckerDelta):
        return _eligible(expr, k, outer) and _solve(expr, k) is not None
    if isinstance(expr, (sp.Mul, sp.Add)):
        return any(_waiting(a, k, outer) for a in expr.args)
    if isinstance(expr, sp.Sum):
        return _waiting(expr.function, k, outer)
    return False


def _sift_term(term, k, outer=frozenset()):
    """Sum one term over index ``k``: sift a delta if there is one."""
    factors = sp.Mul.make_args(term)
    for f in factors:
        if isinstance(f, sp.KroneckerDelta) and _eligible(f, k, outer):
            solved = _solve(f, k)
            if solved is not None:
                value, guard = solved
                rest = sp.Mul(*[g for g in factors if g is not f])
                return guard * rest.xreplace({k: value})
    for f in factors:
        # A delta left waiting inside a nested sum: exchange the sums and sift it here.
        if isinstance(f, sp.Sum) and _waiting(f.function, k, outer):
            rest = sp.Mul(*[g for g in factors if g is not f])
            # The sum's indices leave its scope: rename any that the rest also uses (in sums of its own).
            clash = {str(i.label) for i in rest.atoms(sp.Idx)}
            # Fresh names avoid every index of the whole term (the moved sum's own inner sums too).
            taken = {str(i.label) for i in term.atoms(sp.Idx)} | {str(i.label) for i in outer} | {str(k.label)}
            renames = {lim[0]: _fresh_index(lim[0], taken) for lim in f.limits if str(lim[0].label) in clash}
            body, limits = f.function.xreplace(renames), [renames.get(lim[0], lim[0]) for lim in f.limits]
            out = sum_over(rest * body, k, outer)
            for i in limits:
                out = sum_over(out, i, outer)
            return merge_sums(out)
    inside = [f for f in factors if f.has(k)]
    outside = [f for f in factors if not f.has(k)]
    coeff = sp.Mul(*outside)
    if not inside:
        lo, hi = _range(k)
        return coeff * (hi - lo + 1)
    return coeff * Sum(sp.Mul(*inside), (k, k.lower, k.upper))


def _fresh_index(i, taken: set):
    n = 1
    while f"{i.label}{n}" in taken:
        n += 1
    taken.add(f"{i.label}{n}")
    return sp.Idx(f"{i.label}{n}", (i.lower, i.upper))


def merge_sums(expr):
    """Σ_a (f · Σ_b g) → Σ_{a,b} f g, where a term holds a shifted read: one contraction, not nested ones."""
    def merge(e):
        factors = sp.Mul.make_args(e.function)
        nested = [f for f in factors if isinstance(f, sp.Sum)]
        if len(nested) != 1 or not any(shifted(r) for r in e.atoms(sp.Indexed)):
            return e
        inner = nested[0]
        rest = sp.Mul(*[f for f in factors if f is not inner])
        return Sum(rest * inner.function, *inner.limits, *e.limits)

    return expr.replace(lambda e: isinstance(e, sp.Sum), merge)


def pull_out_of_atmax(expr):
    """AtMax(c·g, f, k) = c·AtMax(g, f, k) for factors c free of the maximised indices."""
    def pull(e):
        over = set(e.over)
        factors = sp.Mul.make_args(e.value)
        free = [f for f in factors if not (f.free_symbols & over)]
        if not free:
            return e
        kept = sp.Mul(*[f for f in factors if f.free_symbols & over])
        return sp.Mul(*free) * AtMax(kept, e.body, *e.over)

    return expr.replace(lambda e: isinstance(e, AtMax), pull)


def sum_over(body, k, outer=frozenset()):
    """Σ_k body, in normal form, with deltas sifted."""
    body = pull_deltas_out_of_piecewise(body)
    return sp.Add(*[_into_atmax(t, k, outer) or _sift_term(t, k, outer) for t in _terms(body)])


def _into_atmax(term, k, outer):
    """Σ_k AtMax(g, f, i…)·r = AtMax(Σ_k g·r, f, i…) where g holds a delta in k at the maximised indices (a
    pool's arg-max route, δ(σh + i − p, k), which cannot leave the AtMax) and neither r nor f depends on what
    the other varies over: the delta then sifts inside (the value of r at the arg-max). None otherwise."""
    factors = sp.Mul.make_args(term)
    routed = [a for a in factors if isinstance(a, AtMax) and k not in a.body.free_symbols
              and any(k in d.free_symbols and d.free_symbols & set(a.over) for d in a.value.atoms(sp.KroneckerDelta))]
    if len(routed) != 1:
        return None
    a = routed[0]
    rest = sp.Mul(*[f for f in factors if f is not a])
    if rest.free_symbols & set(a.over):
        return None
    return AtMax(sum_over(a.value * rest, k, outer), a.body, *a.over)


def sift(expr, outer=frozenset()):
    """Normalise every ``Sum`` in ``expr`` (innermost first) and sift its deltas.

    ``outer``: indices that enclosing sums bind and have not summed yet.
    """
    if not expr.has(sp.Sum, sp.Piecewise, AtMax):
        return expr
    if isinstance(expr, sp.Sum):
        ks = [lim[0] for lim in expr.limits]
        body = sift(expr.function, outer | set(ks))
        # Limits are listed innermost first.
        for n, k in enumerate(ks):
            body = sum_over(body, k, outer | set(ks[n + 1:]))
        return body
    if expr.args:
        new = expr.func(*[sift(a, outer) for a in expr.args])
        if isinstance(new, sp.Piecewise):
            new = pull_deltas_out_of_piecewise(new)
        if new.has(AtMax):
            new = pull_out_of_atmax(new)
        return new
    return expr
