"""Which factors of a product are at most one in magnitude, so that a kernel multiplies them first.

A product is evaluated left to right, and one that is finite may pass through an infinite partial product:
``e^{−|A|} · c0 · dcell · (1 + e^{−|A|})^{−2}`` (an LSTM's forget-gate slope) overflows at ``c0 · dcell`` where
the whole is at most ``c0 dcell / 4``. Factors that can only shrink (``e^{−|A|}``, ``(1 + u²)^{−1}``, tanh) go
first. This is a guard against overflow alone, from the factors' forms: what is not shown to be at most one is
left in its order, and small factors first may underflow where an interleaved order would not (1e-200 ·
1e-200 · 1e200 · 1e200), which a gradient far below the smallest normal number reads as its true limit.

``values`` maps a kernel's earlier temporaries to their right-hand sides (``tmp3 = |A|``), so that a read of
one is judged by what it holds; an argument's read is unknown: neither bounded nor signed. A judgement that
is not proved is False.
"""
from __future__ import annotations

import sympy as sp
from sympy.codegen import cfunctions as cf

# Functions into [−1, 1] (atan is not: ±π/2).
_BOUNDED = (sp.tanh, sp.sin, sp.cos, sp.erf)


def _number(e):
    """e as a real number, or None (a non-number, nan, an infinity, a complex number)."""
    if e.is_number and e.is_extended_real and e.is_finite:
        return e
    return None


def _value(e, values, seen):
    """The right-hand side a read of a temporary holds (None for an argument, or a temporary already being
    judged: a name read in its own definition proves nothing)."""
    name = str(e.base.label) if isinstance(e, sp.Indexed) else str(e.label) if isinstance(e, sp.IndexedBase) else None
    if name is None or name in seen:
        return None, seen
    return values.get(name), seen | {name}


def _known(e, values, seen, of_number, judge):
    """``of_number(e)`` for a number, ``judge`` of what a temporary holds for a read of one; else None."""
    n = _number(e)
    if n is not None:
        return bool(of_number(n))
    inner, seen = _value(e, values, seen)
    return judge(inner, values, seen) if inner is not None else None


def nonnegative(e, values, seen=frozenset()) -> bool:
    known = _known(e, values, seen, lambda n: n >= 0, nonnegative)
    if known is not None:
        return known
    if isinstance(e, (sp.Abs, sp.exp, sp.cosh, sp.erfc)):
        return True
    if isinstance(e, sp.Pow) and e.exp.is_number:
        return bool(e.exp.is_even) or nonnegative(e.base, values, seen)
    if isinstance(e, (sp.Add, sp.Mul, sp.Max, sp.Min)):
        return all(nonnegative(a, values, seen) for a in e.args)
    return False


def nonpositive(e, values, seen=frozenset()) -> bool:
    known = _known(e, values, seen, lambda n: n <= 0, nonpositive)
    if known is not None:
        return known
    if isinstance(e, sp.Mul):   # −2 |u|: one factor nonpositive, the others nonnegative
        signs = [nonpositive(a, values, seen) for a in e.args]
        return sum(signs) == 1 and all(s or nonnegative(a, values, seen) for a, s in zip(e.args, signs))
    if isinstance(e, sp.Add):
        return all(nonpositive(a, values, seen) for a in e.args)
    return False


def _at_least_one(e, values, seen) -> bool:
    """1 ≤ e: 1 plus what is nonnegative, cosh, e to a nonnegative power, a dimension (a positive integer), or
    a product or positive power of those."""
    known = _known(e, values, seen, lambda n: n >= 1, _at_least_one)
    if known is not None:
        return known
    if isinstance(e, sp.cosh) or (isinstance(e, sp.Symbol) and e.is_integer and e.is_positive):
        return True
    if isinstance(e, sp.Mul):
        return all(_at_least_one(a, values, seen) for a in e.args)
    if isinstance(e, sp.Pow) and _number(e.exp) is not None and e.exp.is_positive:
        return _at_least_one(e.base, values, seen)
    if isinstance(e, sp.exp):
        return nonnegative(e.args[0], values, seen)
    if isinstance(e, sp.Add):
        numbers = [_number(a) for a in e.args if _number(a) is not None]
        rest = [a for a in e.args if _number(a) is None]
        return bool(sum(numbers) >= 1) and all(nonnegative(a, values, seen) for a in rest)
    return False


def at_most_one(e, values, seen=frozenset()) -> bool:
    """|e| ≤ 1, from its form (and the forms of the temporaries it reads)."""
    known = _known(e, values, seen, lambda n: abs(n) <= 1, at_most_one)
    if known is not None:
        return known
    if isinstance(e, _BOUNDED):
        return True
    if isinstance(e, sp.exp):
        return nonpositive(e.args[0], values, seen)
    if isinstance(e, cf.expm1):   # e^u − 1 ∈ [−1, 0] for u ≤ 0
        return nonpositive(e.args[0], values, seen)
    if isinstance(e, sp.Abs):
        return at_most_one(e.args[0], values, seen)
    if isinstance(e, sp.Pow) and _number(e.exp) is not None:
        if e.exp.is_negative:
            return _at_least_one(e.base, values, seen)
        return bool(e.exp.is_positive) and at_most_one(e.base, values, seen)
    if isinstance(e, sp.Mul):
        return all(at_most_one(a, values, seen) for a in e.args)
    if isinstance(e, sp.Piecewise):
        return all(at_most_one(v, values, seen) for v, _ in e.args)
    return False


def inlined(statements) -> dict:
    """Each statement's right-hand side with the earlier statements' read into it: a backward judges what a
    forward saved (an LSTM's gate f, a σ) in the forward's own names, which its own temporaries may reuse.
    Indices are not renamed: a bound does not depend on where it is read."""
    out = {}
    for st in statements:
        reads = st.rhs.atoms(sp.Indexed)
        bare = st.rhs.atoms(sp.IndexedBase) - {r.base for r in reads}
        known = {r: out[str(r.base.label)] for r in reads if str(r.base.label) in out}
        known.update({b: out[str(b.label)] for b in bare if str(b.label) in out})
        out[st.name] = st.rhs.xreplace(known)
    return out


def shrinking_first(factors, values) -> list:
    """The factors, those at most one in magnitude first (each group in its given order)."""
    small = [f for f in factors if at_most_one(f, values)]
    return small + [f for f in factors if f not in small]
