"""Kronecker-delta sifting and the normal form of sums.

The one rule this project owns instead of ``Sum.doit`` (which leaves
``Piecewise`` range guards around deltas of ``IndexedBase`` elements)::

    Σ_k δ_kj f(k) = f(j)      when j ranges inside k's range.

Around it, sums are kept in a normal form: linear (a sum of terms is split),
factors that do not depend on the summation index are pulled out, and a sum of
a constant is the constant times the range length.
"""
from __future__ import annotations

import sympy as sp


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
        factors = None
        for value, _ in pw.args:
            if value == 0:
                continue
            for term in _terms(value) if value.has(sp.KroneckerDelta) else (value,):
                deltas = {f for f in sp.Mul.make_args(term) if isinstance(f, sp.KroneckerDelta)}
                factors = deltas if factors is None else factors & deltas
        if not factors:
            return pw
        common = sp.Mul(*sorted(factors, key=sp.default_sort_key))
        branches = [(sp.Add(*[t / common for t in _terms(v)]) if v != 0 else v, c) for v, c in pw.args]
        return common * sp.Piecewise(*branches)

    return expr.replace(lambda e: isinstance(e, sp.Piecewise), pull)


def _terms(body):
    """The additive terms of ``body`` with products distributed over sums."""
    expanded = sp.expand(body, power_exp=False, power_base=False, log=False, multinomial=False)
    return sp.Add.make_args(expanded)


def _sift_term(term, k):
    """Sum one term over index ``k``: sift a delta if there is one."""
    factors = sp.Mul.make_args(term)
    for f in factors:
        if isinstance(f, sp.KroneckerDelta) and k in f.args:
            a, b = f.args
            j = b if a == k else a
            if j != k and _inside(j, k):
                rest = sp.Mul(*[g for g in factors if g is not f])
                return rest.xreplace({k: j})
    inside = [f for f in factors if f.has(k)]
    outside = [f for f in factors if not f.has(k)]
    coeff = sp.Mul(*outside)
    if not inside:
        lo, hi = _range(k)
        return coeff * (hi - lo + 1)
    return coeff * sp.Sum(sp.Mul(*inside), (k, k.lower, k.upper))


def sum_over(body, k):
    """Σ_k body, in normal form, with deltas sifted."""
    body = pull_deltas_out_of_piecewise(body)
    return sp.Add(*[_sift_term(t, k) for t in _terms(body)])


def sift(expr):
    """Normalise every ``Sum`` in ``expr`` (innermost first) and sift its deltas."""
    if not expr.has(sp.Sum, sp.Piecewise):
        return expr
    if isinstance(expr, sp.Sum):
        body = sift(expr.function)
        # Limits are listed innermost first.
        for k, lo, hi in expr.limits:
            body = sum_over(body, k)
        return body
    if expr.args:
        new = expr.func(*[sift(a) for a in expr.args])
        if isinstance(new, sp.Piecewise):
            new = pull_deltas_out_of_piecewise(new)
        return new
    return expr
