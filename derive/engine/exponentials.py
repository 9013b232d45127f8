"""Exponentials of unbounded arguments, written so that nothing overflows.

An elementwise expression built from ``exp(k u)``, ``cosh``, ``sinh``, ``tanh``
of one unbounded argument ``u`` (and ``log`` of such sums) is a rational
function of ``w = e^u`` with coefficients free of exponentials::

    f = P(w) / Q(w)                            (logs: log P(w) − log Q(w))

Evaluated as written it overflows: ``e^x / cosh²(x/2)`` is ``inf/inf`` at
x = 100 in float32 although ``f`` is finite. Written in ``t = e^{−|u|} ≤ 1``
on each side of 0 it cannot::

    u ≤ 0:  w = t      f = P(t) / Q(t)
    u > 0:  w = 1/t    f = t^d P(1/t) / (t^d Q(1/t)),  d = max(deg P, deg Q)

Both are polynomials in ``t ∈ (0, 1]``. A factor ``w − 1`` (which would cancel
as u → 0: ``1 − e^{−2x}`` in ``tanh``) becomes ``expm1(−|u|)``, so results keep
their relative accuracy near 0 too. When the two sides agree (sigmoid's
derivative ``t/(1+t)²``) no select is emitted.

The rewrite is applied only where it is needed: to a maximal elementwise
sub-expression in which such an exponential occurs more than once, or inside
a sum (``1 + e^{−x}``, ``1 − tanh²``). A lone factor ``e^x`` overflows only
where its true value does.
"""
from __future__ import annotations

from fractions import Fraction
from math import gcd

import sympy as sp
import sympy.codegen.cfunctions as cf

from . import budget

HYPERBOLIC = (sp.cosh, sp.sinh, sp.tanh, sp.sech, sp.csch, sp.coth)
# Nodes whose insides are normalised separately (their bodies are not elementwise in one place).
BARRIERS = (sp.Sum, sp.Piecewise)


def bounded_above(a) -> bool:
    """True when ``exp(a)`` cannot overflow: ``a`` is provably ≤ 0 (``−x²``, ``min(x, 0)``, ``−|x|``)."""
    return bool(a.is_nonpositive) or not a.has(sp.Indexed, sp.IndexedBase)


def _unbounded_exps(e) -> list:
    return sorted((x for x in e.atoms(sp.exp) if not bounded_above(x.args[0])), key=sp.default_sort_key)


def _has_tensor(e) -> bool:
    return e.has(sp.Indexed, sp.IndexedBase)


def _prepare(e):
    """Hyperbolics as exponentials, expm1/log1p spelled out, constant terms split off exponents."""
    e = e.replace(lambda x: isinstance(x, HYPERBOLIC) and _has_tensor(x.args[0]), lambda x: x.rewrite(sp.exp))
    e = e.replace(lambda x: isinstance(x, cf.expm1), lambda x: sp.exp(x.args[0]) - 1)
    e = e.replace(lambda x: isinstance(x, cf.log1p), lambda x: sp.log(1 + x.args[0]))

    def split(x):
        terms = sp.Add.make_args(sp.expand(x.args[0]))
        const = sp.Add(*[t for t in terms if not _has_tensor(t)])
        rest = sp.Add(*[t for t in terms if _has_tensor(t)])
        return sp.exp(const) * sp.exp(rest) if const != 0 and rest != 0 else x

    return e.replace(lambda x: isinstance(x, sp.exp), split)


def _exponential_atoms(e) -> list:
    """Occurrences that may overflow or cancel: exp, expm1 of an unbounded argument; hyperbolics of a tensor."""
    out = []
    for x in sp.preorder_traversal(e):
        if isinstance(x, (sp.exp, cf.expm1)) and not bounded_above(x.args[0]):
            out.append(x)
        elif isinstance(x, HYPERBOLIC) and _has_tensor(x.args[0]):
            out.append(x)
    return out


def needs_rewrite(e) -> bool:
    """Two exponential-type atoms (e^x / cosh²(x/2): inf/inf), or a bounded one inside a sum (1 − tanh²).

    A lone ``e^x`` overflows only where its true value does. In a denominator (``x/(1 + e^{−x})``)
    its overflow flushes the result to 0 while the true value is still a normal number, and under a
    ``log`` or a root (softplus ``log(1 + e^x)``) it overflows long before the result does.
    """
    atoms = _exponential_atoms(e)
    if len(atoms) >= 2:
        return True
    if not atoms:
        return False

    def inside(nodes, of):
        return any(any(a in set(sp.preorder_traversal(n)) for a in of) for n in nodes)

    bounded = [a for a in atoms if isinstance(a, (sp.tanh, sp.sech, sp.csch, sp.coth))]
    # log(1 + e^x) and √(1 + e^x) grow slower than e^x: finite long after it overflows; and
    # x/(1 + e^{−x}) flushes to 0 where e^{−x} overflows, while x e^x is still a normal number.
    slower = [x for x in sp.preorder_traversal(e) if isinstance(x, (sp.log, cf.log1p))
              or (isinstance(x, sp.Pow) and x.exp.is_number and (abs(x.exp) < 1 or x.exp.is_negative))]
    return inside([a for a in e.atoms(sp.Add) if _has_tensor(a)], bounded) or inside(slower, atoms)


def _direction(exps):
    """``(u, {atom: power})`` with every atom ``exp(k u)`` for integers k, or None for several directions."""
    if not exps:
        return None
    a0 = exps[0].args[0]
    ratios = {}
    for x in exps:
        r = sp.cancel(x.args[0] / a0)
        if not r.is_Rational:
            return None
        ratios[x] = Fraction(int(r.p), int(r.q))
    num = 0
    den = 1
    for r in ratios.values():
        num = gcd(num, r.numerator)
        den = den * r.denominator // gcd(den, r.denominator)
    g = Fraction(num, den)
    return sp.Rational(g.numerator, g.denominator) * a0, {x: int(r / g) for x, r in ratios.items()}


def _reduce_powers(polys):
    """The gcd G of the powers of w present, so w^G can be the variable."""
    g = 0
    for poly in polys:
        for (k,) in poly.monoms():
            g = gcd(g, k)
    return g or 1


def _split_unit_root(poly, t):
    """``(m, poly / (t − 1)^m)``: the multiplicity of the root t = 1 taken out."""
    m = 0
    while poly.degree() > 0 and sp.expand(poly.eval(1)) == 0:
        poly = sp.Poly(sp.quo(poly.as_expr(), t - 1, t), t)
        m += 1
    return m, poly


def _side(p, q, t, near_one):
    """P(t)/Q(t) with factors (t − 1) written ``near_one`` (expm1(−|u|), accurate near u = 0)."""
    mp, p = _split_unit_root(p, t)
    mq, q = _split_unit_root(q, t)
    return p.as_expr() * near_one ** (mp - mq) / q.as_expr()


def _rational(expr, w):
    """``expr`` as P(w)/Q(w) polynomials in w, the log atoms standing in as coefficients."""
    num, den = sp.fraction(sp.together(expr))
    try:
        return sp.Poly(num, w), sp.Poly(den, w)
    except sp.PolynomialError:
        return None


def _rewrite(e, temporary):
    e = _prepare(e)
    exps = _unbounded_exps(e)
    found = _direction(exps)
    if found is None:
        return None
    u, powers = found
    w = sp.Dummy("w", positive=True)
    ew = e.xreplace({x: w ** k for x, k in powers.items()})
    if ew.has(*exps) or ew.has(sp.exp) and any(w in x.free_symbols for x in ew.atoms(sp.exp)):
        return None
    # What does not involve w stays as written (a coefficient X (1 − T) of a highway's mix, not X − T X, which
    # cancels where T → 1): each compound such sub-expression is one symbol to the polynomials below.
    held = {}

    def hold(x):
        # A scalar tensor (dL) too: SymPy's Poly iterates an IndexedBase as a sequence (dL[0], dL[1], …).
        if isinstance(x, sp.IndexedBase):
            return held.setdefault(x, sp.Dummy("c", real=True))
        if x.is_Atom or isinstance(x, sp.Indexed):
            return x
        if w in x.free_symbols:
            return x.func(*[hold(a) for a in x.args])
        if not _has_tensor(x):
            return x
        return held.setdefault(x, sp.Dummy("c", real=True))

    ew = hold(ew)
    # log(R(w)) atoms become placeholders, written per side below.
    logs = {x: sp.Dummy("L") for x in ew.atoms(sp.log) if w in x.free_symbols}
    body = ew.xreplace(logs)
    if any(w in f.free_symbols for f in body.atoms(sp.Function)):
        return None  # w inside a function other than log (tanh(e^x)): not rational
    pq = _rational(body, w)
    log_pq = {}
    for x, L in logs.items():
        inner = _rational(x.args[0], w)
        if inner is None:
            return None
        log_pq[L] = inner
    if pq is None:
        return None
    g = _reduce_powers([*pq, *[poly for pair in log_pq.values() for poly in pair]])
    if g > 1:
        u = g * u

        def rescale(poly):
            return sp.Poly(sp.Add(*[c * w ** (k // g) for (k,), c in poly.terms()]), w)
        pq = tuple(map(rescale, pq))
        log_pq = {L: tuple(map(rescale, pair)) for L, pair in log_pq.items()}

    t = sp.Dummy("t", positive=True)
    # |u| with u's numerical content outside the |·| (2|A + B r|, not |2A + 2B r|): SymPy distributes 2 over a
    # sum, and 2B can overflow where B, and 2|A + B r| → exp(−inf) = 0, do not.
    content, primitive = u.as_content_primitive()
    size = content * sp.Abs(primitive) if content.is_positive else sp.Abs(u)
    near_one = cf.expm1(-size)

    def at_t(poly):
        return sp.Poly(poly.as_expr().xreplace({w: t}), t)

    def reversed_(poly, d):
        return sp.Poly(sp.expand(t ** d * poly.as_expr().xreplace({w: 1 / t})), t)

    def low_power(poly):
        return min(k for (k,), _ in poly.terms())

    def one_side(positive):
        def split(P, Q):
            # P/Q = w^n P0/Q0 with P0(0), Q0(0) ≠ 0 on the side where w → 0 (u ≤ 0), reversed on the other.
            if positive:
                d = max(P.degree(), Q.degree())
                return P.degree() - Q.degree(), reversed_(P, P.degree()), reversed_(Q, Q.degree()), d
            lp, lq = low_power(P), low_power(Q)
            P0 = sp.Poly(sp.expand(P.as_expr() / w ** lp), w)
            Q0 = sp.Poly(sp.expand(Q.as_expr() / w ** lq), w)
            return lp - lq, at_t(P0), at_t(Q0), 0

        n, P, Q, _ = split(*pq)
        # w^n = e^{n u}: on this side w = t^{±1}
        value = _side(P, Q, t, near_one) * t ** (-n if positive else n)
        subs = {}
        for L, (lp, lq) in log_pq.items():
            k, Pl, Ql, _ = split(lp, lq)
            # log w^k = k u
            subs[L] = k * u + _log(Pl, t, near_one) - _log(Ql, t, near_one)
        return value.xreplace(subs)

    pos, neg = one_side(True), one_side(False)
    same = sp.expand(pos - neg) == 0
    # t = exp(−|u|) is computed once, as an array of its own, so t² is a square, not another exp.
    tt = temporary(sp.exp(-size))
    back = {d: x for x, d in held.items()}
    pos, neg = (_tidy(x, t).xreplace({t: tt, **back}) for x in (pos, neg))
    # The sign of u is the sign of u without its positive constant factors (√2/√π (x + 0.04 x³) > 0 ⇔ x + 0.04 x³ > 0).
    sign = sp.Mul(*[f for f in sp.Mul.make_args(u) if _has_tensor(f) or not f.is_positive])
    return neg if same else sp.Piecewise((pos, sign > 0), (neg, True))


def _tidy(expr, t):
    """Numerator and denominator factored where they factor ((1 + t)²), else collected in powers of t."""
    num, den = sp.fraction(sp.together(expr))

    def tidy(e):
        f = budget.attempt(sp.factor, e, "factor a polynomial in exp(-|u|)", max_size=200)
        f = e if f is None else f
        return sp.Mul(*[sp.collect(sp.expand(a), t) if isinstance(a, sp.Add) else a for a in sp.Mul.make_args(f)])

    return tidy(num) / tidy(den)


def _log(poly, t, near_one):
    """log P(t) with P(0) ≠ 0: log1p where P = c (1 + …), a root t = 1 through log(1 − t) = log(−expm1(−|u|))."""
    m, poly = _split_unit_root(poly, t)
    if m % 2:
        poly = sp.Poly(-poly.as_expr(), t)  # (t − 1)^m P1 = (1 − t)^m (−1)^m P1
    c0 = poly.eval(0)
    rest = sp.expand(poly.as_expr() - c0)
    core = sp.log(c0) + (cf.log1p(rest / c0) if rest != 0 else 0)
    return core + (m * sp.log(-near_one) if m else 0)


def normalise(expr, temporary):
    """Rewrite every maximal elementwise sub-expression that needs it (see the module docstring).

    ``temporary(value)`` returns an array element holding ``value`` (computed once, before the statement).
    """
    def go(e):
        if e.is_Atom or isinstance(e, (sp.Indexed, sp.IndexedBase)):
            return e
        if isinstance(e, sp.Piecewise):
            return sp.Piecewise(*[(go(v), c) for v, c in e.args])
        if isinstance(e, BARRIERS) or (e.has(*BARRIERS) and not isinstance(e, (sp.Add, sp.Mul))):
            args = [go(a) for a in e.args]
            return e.func(*args) if args != list(e.args) else e
        if e.has(*BARRIERS):
            # The elementwise operands of a sum or product are one unit: e^x · 1/(1 + e^x) is rewritten whole.
            inner = [a for a in e.args if a.has(*BARRIERS)]
            plain = [a for a in e.args if not a.has(*BARRIERS)]
            return e.func(go(e.func(*plain)), *[go(a) for a in inner])
        if not needs_rewrite(e):
            return e
        new = budget.attempt(lambda x: _rewrite(x, temporary), e, "write exponentials without overflow",
                             max_size=600)
        if new is None and isinstance(e, (sp.Add, sp.Mul)):
            # Not one unit (exponentials in two directions: a gate read at j and at j + P): each operand alone.
            args = [go(a) for a in e.args]
            return e.func(*args) if args != list(e.args) else e
        return e if new is None else new

    return go(expr)
