"""Exact rewrites that keep emitted kernels finite and accurate for large inputs.

- A reduction ``Z = c Σ_k exp(u_k)`` becomes ``m = max_k u_k``,
  ``Z' = c Σ_k exp(u_k − m)``; later uses of ``Z`` read ``exp(m) Z'``, and the
  ``exp(m)`` cancels against the numerator's ``exp(u)`` (stable softmax).
- ``log`` of a quotient intermediate is expanded (``log(exp(a)/Z) = a − log Z``),
  so a probability that underflows to 0 never reaches ``log`` (log-softmax).
- ``exp(x) − 1`` and ``log(1 + x)`` become ``expm1``/``log1p`` (no cancellation near 0).
- ``log(1 + exp(u)) = max(u, 0) + log1p(exp(−|u|))`` (softplus without overflow).
- A balanced ratio ``exp(n u) / (a + b exp(u))^n`` is written ``1 / (a exp(−u) + b)^n``:
  bounded as u → +∞, and tending to the true 0 as u → −∞.
- ``Piecewise((a(u), u > c), (b(u), True))`` with ``a(c) = b(c) = 0`` is
  ``a(max(u, c)) + b(min(u, c))``: each branch is exactly 0 where the other
  holds, so no select is needed (ReLU, LeakyReLU and ELU forwards).
- In the branch of ``Piecewise((a, u > c), (b, True))`` that is taken only when
  ``u ≤ c``, ``exp(u)`` is evaluated as ``exp(min(u, c))``: the branch not taken
  (both are computed by ``where``) can then not overflow.

Each is an identity, so the emitted value is the derived one.
"""
from __future__ import annotations

import sympy as sp
import sympy.codegen.cfunctions
from sympy.codegen.rewriting import expm1_opt, log1p_opt, optimize


class MaxOver(sp.Function):
    """``max_k expr``: the maximum of ``expr`` over the index ``k`` (a reduction)."""

    nargs = 2

    def _latex(self, printer):
        expr, k = self.args
        return r"\max_{%s} %s" % (printer._print(k), printer._print(expr))


def _exp_sum(rhs):
    """``(c, u, k)`` if ``rhs = c Σ_k exp(u)``, else None."""
    const = sp.Mul(*[f for f in sp.Mul.make_args(rhs) if not isinstance(f, sp.Sum)])
    sums = [f for f in sp.Mul.make_args(rhs) if isinstance(f, sp.Sum)]
    if len(sums) != 1 or const.has(sp.Indexed) or len(sums[0].limits) != 1:
        return None
    body = sums[0].function
    if not isinstance(body, sp.exp):
        return None
    return const, body.args[0], sums[0].limits[0]


def _shift_uses(rhs, shifted):
    """``Z[i] → exp(m[i]) Z[i]`` for every shifted reduction, exponentials combined."""
    for zbase, mbase in shifted.items():
        rhs = rhs.replace(lambda e, z=zbase: isinstance(e, sp.Indexed) and e.base == z,
                          lambda e, m=mbase: sp.exp(m[e.indices]) * e)
    return sp.powsimp(sp.expand_log(rhs, force=True), combine="exp") if shifted else rhs


def _expand_log_of_quotients(rhs, definitions):
    """``log(P[i])`` with P a product of exponentials and reciprocals → the log expanded."""
    def is_quotient_log(e):
        if not (isinstance(e, sp.log) and isinstance(e.args[0], sp.Indexed)):
            return False
        d = definitions.get(e.args[0].base)
        return d is not None and isinstance(d.rhs, sp.Mul) and d.rhs.has(sp.exp)

    def expand(e):
        d = definitions[e.args[0].base]
        inline = d.rhs.xreplace(dict(zip(d.indices, e.args[0].indices)))
        return sp.expand_log(sp.log(inline), force=True)

    return rhs.replace(is_quotient_log, expand)


def _softplus(rhs):
    def is_softplus(e):
        return (isinstance(e, sp.log) and isinstance(e.args[0], sp.Add) and len(e.args[0].args) == 2
                and sp.S.One in e.args[0].args and any(isinstance(a, sp.exp) for a in e.args[0].args))

    def stable(e):
        u = next(a for a in e.args[0].args if isinstance(a, sp.exp)).args[0]
        return sp.Max(u, 0) + sp.codegen.cfunctions.log1p(sp.exp(-sp.Abs(u)))

    return rhs.replace(is_softplus, stable)


def _balanced_exp_ratios(rhs):
    def rewrite(m):
        if not isinstance(m, sp.Mul):
            return m
        factors = list(m.args)
        for num in [f for f in factors if isinstance(f, sp.exp)]:
            u = num.args[0]
            for den in [f for f in factors if isinstance(f, sp.Pow) and f.exp == -1 and isinstance(f.base, sp.Add)]:
                b = den.base.coeff(sp.exp(u))
                a = sp.expand(den.base - b * sp.exp(u))
                if b == 0 or a.has(sp.exp(u)):
                    continue
                rest = [f for f in factors if f is not num and f is not den]
                return sp.Mul(*rest) / (a * sp.exp(-u) + b)
        return m

    return rhs.replace(lambda e: isinstance(e, sp.Mul), rewrite)


def _threshold(pw):
    """``(a, b, u, c)`` for ``Piecewise((a, u > c), (b, True))`` with a number c, else None."""
    if len(pw.args) != 2 or not isinstance(pw.args[0].cond, sp.StrictGreaterThan):
        return None
    (a, cond), (b, _) = pw.args
    u, c = cond.args
    return (a, b, u, c) if c.is_number else None


def _split_at_threshold(rhs):
    def split(pw):
        t = _threshold(pw)
        if t is None or not isinstance(t[2], sp.Indexed):
            return pw
        a, b, u, c = t
        if sp.simplify(a.xreplace({u: c})) != 0 or sp.simplify(b.xreplace({u: c})) != 0:
            return pw
        return a.xreplace({u: sp.Max(u, c)}) + b.xreplace({u: sp.Min(u, c)})

    return rhs.replace(lambda e: isinstance(e, sp.Piecewise), split)


def _clamp_untaken_branches(rhs):
    def clamp(pw):
        t = _threshold(pw)
        if t is None:
            return pw
        a, b, u, c = t
        exps = (sp.exp, sp.codegen.cfunctions.expm1)
        b = b.replace(lambda e: isinstance(e, exps) and e.args[0] == u, lambda e: e.func(sp.Min(u, c)))
        return sp.Piecewise((a, pw.args[0].cond), (b, True))

    return rhs.replace(lambda e: isinstance(e, sp.Piecewise), clamp)


def stabilise(statements):
    from .kernel import Statement

    out, shifted, definitions = [], {}, {}
    for st in statements:
        rhs = _shift_uses(st.rhs, shifted)
        rhs = _expand_log_of_quotients(rhs, definitions)
        found = _exp_sum(rhs) if st.indices else None
        if found is not None:
            c, u, (k, lo, hi) = found
            base = st.lhs.base
            m = sp.IndexedBase(f"{base.label}_max", real=True)
            out.append(Statement(m[st.indices], MaxOver(u, k), st.serves))
            rhs = c * sp.Sum(sp.exp(u - m[st.indices]), (k, lo, hi))
            shifted[base] = m
        rhs = _split_at_threshold(_balanced_exp_ratios(_softplus(rhs)))
        rhs = _clamp_untaken_branches(optimize(rhs, [expm1_opt, log1p_opt]))
        new = Statement(st.lhs, rhs, st.serves)
        definitions[new.lhs.base if isinstance(new.lhs, sp.Indexed) else new.lhs] = new
        out.append(new)
    return out
