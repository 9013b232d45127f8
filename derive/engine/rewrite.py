"""Rules that take a sifted derivative to a closed form.

- ``fold``: a reduction's definition read backwards. ``μ_j = (1/S) Σ_r X_rj``
  turns any ``Σ_k X_kq`` into ``S μ_q``; this is what makes ``Σ_s (X_sj − μ_j)``
  vanish.
- ``apply_assumptions``: facts the module states (``Σ_k T_sk = 1``).
- ``reexpress``: solve a definition for the input (``X = X̂ √(σ²+ε) + μ``,
  ``X = log(Y Z)``) and substitute, so the gradient is written in the forward's
  saved quantities. Accepted only when the input disappears, the expression
  does not grow, no ``1 − Y`` appears (it cancels where Y saturates) and no
  new divisor appears (solving ``Y = γ X`` for X divides by γ, which may be 0).
- ``simplify_elementwise``: SymPy's simplify on branch- and sum-free results.
- ``compact``: one fraction, common factors pulled out, a leading minus sign
  moved into a difference.

SymPy's solve, factor, cancel, simplify and together run under a budget
(``budget.attempt``): when one runs out the rule keeps the form it had.
"""
from __future__ import annotations

import functools

import sympy as sp

from . import budget
from .sifting import sift


def _index_wild(name):
    return sp.Wild(f"w_{name}", properties=[lambda e: isinstance(e, sp.Idx)])


def _split_constant(expr):
    """``c · core`` with ``c`` free of tensors."""
    if isinstance(expr, sp.Mul):
        const = [f for f in expr.args if not f.has(sp.Indexed)]
        core = [f for f in expr.args if f.has(sp.Indexed)]
        return sp.Mul(*const), sp.Mul(*core)
    return sp.S.One, expr


def _pattern(expr):
    """``expr`` with every index replaced by a wildcard matching indices only."""
    idx = sorted(expr.atoms(sp.Idx), key=str)
    wilds = {i: _index_wild(str(i.label)) for i in idx}
    return expr.xreplace(wilds), wilds


def _replace_pattern(expr, pattern, wilds, make):
    """Replace every match of ``pattern`` by ``make(binding)`` where ranges agree."""

    def matcher(e):
        m = e.match(pattern)
        if not m:
            return False
        return all(isinstance(m.get(w), sp.Idx) and m[w].upper == i.upper for i, w in wilds.items())

    return expr.replace(matcher, lambda e: make(e.match(pattern)))


def complements(expr, bases) -> bool:
    """True if ``expr`` holds ``c − f(Y)`` with Y one of ``bases`` and c a number.

    Such a difference cancels catastrophically where the output saturates
    (sigmoid's ``1 − Y`` at large X, tanh's ``1 − Y²``), so rules that would
    introduce one are not applied.
    """
    for add in expr.atoms(sp.Add):
        if any(a.is_Number for a in add.args) and any(
                e.base in bases for a in add.args for e in a.atoms(sp.Indexed)):
            return True
    return False


def divisors(expr) -> set:
    """Tensors that ``expr`` divides by (a reciprocal or negative power containing them)."""
    out = set()
    for p in expr.atoms(sp.Pow):
        if p.exp.is_negative:
            out |= p.base.atoms(sp.IndexedBase)
    return out


def _outputs(forward) -> set:
    return {d.tensor.base for d in forward.definitions}


def fold(expr, forward):
    """Replace reductions that a definition names by that name: Σ_k X_kq → S μ_q.

    Only reductions fold. Elementwise definitions are the business of
    ``reexpress``, which checks the whole result for cancellation.
    """
    for d in forward.definitions:
        const, core = _split_constant(d.expr)
        if not isinstance(core, sp.Sum):
            continue
        pattern, wilds = _pattern(core)
        free = [wilds[i] for i in d.indices]

        def make(m, base=d.tensor.base, free=free, const=const):
            return (base[tuple(m[w] for w in free)] if free else base) / const

        expr = _replace_pattern(expr, pattern, wilds, make)
    return expr


def apply_assumptions(expr, forward):
    for pattern, replacement in forward.assumptions:
        pat, wilds = _pattern(pattern)
        expr = _replace_pattern(expr, pat, wilds, lambda m, r=replacement, w=wilds: r.xreplace({i: m[x] for i, x in w.items()}))
    return expr


def tidy(expr, forward):
    """Normal form of sums, then definitions and assumptions folded in."""
    return apply_assumptions(fold(sift(expr), forward), forward)


@functools.lru_cache(maxsize=4096)
def _elementwise_inverse(d, x_base):
    """Solve ``d`` for ``x_base[d.indices]`` when d depends on X elementwise, once, with one solution. Kept per
    (definition, tensor): every gradient of a module asks again (the LSTM's second order: nineteen times)."""
    if d.tensor.base == x_base:
        return None
    uses = [e for e in d.expr.atoms(sp.Indexed) if e.base == x_base]
    if not uses and x_base in d.expr.atoms(sp.IndexedBase) and not d.indices:
        uses = [x_base]  # a scalar tensor
    if not uses or any(tuple(getattr(e, "indices", ())) != tuple(d.indices) for e in uses) \
            or d.expr.has(sp.Sum, sp.Piecewise, sp.Max, sp.Min, sp.Abs):
        return None
    if d.expr.count(uses[0]) != 1:
        return None  # X occurring more than once (x·tanh(x)) has no inverse worth looking for
    u = sp.Dummy("u")
    # The defined value keeps its tensor's domain (a norm is positive), so √(y²) = y can be checked.
    y = sp.Dummy("y", positive=True) if d.tensor.positive else sp.Dummy("y", real=True)

    def solve(e):
        try:
            return sp.solve(sp.Eq(y, e.xreplace({uses[0]: u})), u)
        except NotImplementedError:
            return []

    sols = budget.attempt(solve, d.expr, f"solve the definition of {d.tensor.name} for {x_base.label}") or []
    if len(sols) != 1:
        return None
    # solve() may return a branch that is not an inverse everywhere; keep only true inverses.
    check = budget.attempt(sp.simplify, d.expr.xreplace({uses[0]: sols[0]}) - y, "check an inverse")
    if check != 0:
        return None
    element = d.tensor.base[d.indices] if d.indices else d.tensor.base
    return sols[0].xreplace({y: element})


def expand_over(expr):
    """``expr`` expanded (products over sums, powers of sums) with each divisor left as written: 1/(ε + σ²)²
    stays a power of ε + σ², not 1/(ε² + 2εσ² + σ⁴), so terms over the same divisor still combine and cancel."""
    held = {}

    def hold(p):   # a sum as base expanded as the numerators are (both show e^{−x(1+y)} alike), not its power
        d = sp.Dummy("divisor")
        base = sp.expand(p.base, power_base=False, log=False) if isinstance(p.base, sp.Add) else p.base
        held[d] = sp.Pow(base, p.exp)
        return d

    def divisor(x):
        return isinstance(x, sp.Pow) and x.exp.is_number and x.exp.is_negative and x.base.has(sp.Add)
    out = sp.expand(expr.replace(divisor, hold), power_base=False, log=False)
    while held.keys() & out.free_symbols:
        out = out.xreplace(held)
    return out


def reexpress(expr, forward, x_base):
    """Write ``expr`` in the forward's outputs instead of the input ``x_base`` where that is simpler."""
    if x_base not in expr.atoms(sp.IndexedBase):
        return expr
    size = functools.cache(lambda: sp.count_ops(compact(expr)))   # of the expression as given, once
    for d in reversed(forward.definitions):
        if d.tensor.name in forward.adjoint_lets:
            continue   # a gradient (dA in a second-order forward) is no saved quantity to write others in
        inverse = _elementwise_inverse(d, x_base)
        if inverse is None:
            continue
        def swap(e, d=d, inverse=inverse):
            return inverse.xreplace(dict(zip(d.indices, getattr(e, "indices", ()))))
        if isinstance(x_base, sp.IndexedBase) and not any(e.base == x_base for e in expr.atoms(sp.Indexed)):
            new = expr.xreplace({x_base: swap(x_base)})
        else:
            new = expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == x_base, swap)
        if isinstance(inverse, sp.Indexed):
            return new   # an output that is x itself (an LSTM's c = cell): a rename, never larger
        new = tidy(expand_over(new), forward)
        if not new.has(sp.Sum):
            new = budget.attempt(lambda e: sp.factor(sp.cancel(e)), new, "cancel and factor") or new
        if x_base in new.atoms(sp.IndexedBase) or complements(new, _outputs(forward)):
            continue
        # Where X divided, its replacement may divide by the output Y of a function of X alone (σ(X));
        # nothing else may become a divisor: Y = γ X (or A σ(G)) solved for X (or G) divides by γ (or A),
        # which may be 0.
        alone = d.expr.atoms(sp.IndexedBase) <= {x_base}
        allowed = divisors(expr) | ({d.tensor.base} if x_base in divisors(expr) and alone else set())
        if not divisors(new) <= allowed:
            continue
        if sp.count_ops(compact(new)) <= size():
            return new
    return expr


def simplify_elementwise(expr, forward=None):
    """SymPy's ``simplify`` on a gradient with no sums, deltas or branches, when it is no larger.

    It turns sigmoid's ``e^{-x}/(1+e^{-x})^2`` into ``1/(4 cosh^2(x/2))`` and
    tanh's ``1 - tanh^2 x`` into ``1/cosh^2 x``: no cancellation, and overflow
    only ever yields the true limit 0.

    Terms that read different upstream gradients (elements of tensors the forward does not declare: ``dY``, a
    shared let's ``dz``) cannot cancel one another: each group is simplified on its own, so that the four gates
    of an LSTM stay four terms instead of one fraction over a common denominator.
    """
    if expr.has(sp.Sum, sp.Piecewise, sp.KroneckerDelta):
        return expr
    groups = by_upstream(expr, forward)
    if len(groups) > 1:
        return sp.Add(*[simplify_elementwise(g) for g in groups])
    if isinstance(expr, sp.Mul) and not any(isinstance(f.as_base_exp()[0], sp.Add) for f in expr.args):
        # No sum among the factors (sinh(u) B dY / cosh³(u)): no terms to combine or cancel, only one product to
        # rewrite as another (sinh/cosh³ as tanh/cosh²), which changes no magnitude, for seconds of SymPy's time.
        return expr
    new = budget.attempt(sp.simplify, expr, "simplify the elementwise expression")
    if new is None:
        return expr
    # simplify folds factors into logs (log(2/3)·(2/3)^x dY → log((2/3)^((2/3)^x dY))), which overflows where
    # the value does not: log(a^b) = b log a and log(ab) = log a + log b, where SymPy can prove a, b > 0, take
    # that back (no force: a sign it cannot prove stays folded).
    new = sp.expand_log(new, deep=True)
    alt = _with_plain_arguments(new)
    if alt is not None:
        new = alt
    return new if sp.count_ops(new) <= sp.count_ops(expr) else expr


# Functions whose identities (1 − tanh² u = 1/cosh² u) SymPy's simplify finds for a symbol u but not for a sum
# (tanh(A + B r)): tried again with each compound argument a symbol of its own.
SIMPLIFIED_BY_SYMBOL = (sp.tanh, sp.cosh, sp.sinh, sp.sin, sp.cos)


def _with_plain_arguments(expr):
    """``simplify`` with every compound argument of a hyperbolic or trigonometric function replaced by a
    symbol, then put back; None when there is none, or that does not make the expression smaller, or runs out
    of budget."""
    arguments = sorted({f.args[0] for f in expr.atoms(*SIMPLIFIED_BY_SYMBOL) if not f.args[0].is_Symbol},
                       key=sp.default_sort_key)
    if not arguments:
        return None
    plain = {a: sp.Dummy("u", real=True) for a in arguments}
    new = budget.attempt(sp.simplify, expr.xreplace({f: f.func(plain[f.args[0]]) for f in expr.atoms(*SIMPLIFIED_BY_SYMBOL)
                                                     if f.args[0] in plain}), "simplify the elementwise expression")
    if new is None:
        return None
    new = new.xreplace({d: a for a, d in plain.items()})
    return new if sp.count_ops(new) < sp.count_ops(expr) else None


def reexpress_intermediates(expr, forward):
    """Replace an intermediate by its inverse through a later definition where that is simpler: ``√(‖w‖²) → ‖w‖``."""
    for d in forward.intermediates:
        if d.tensor.base in expr.atoms(sp.IndexedBase):
            new = reexpress(expr, forward, d.tensor.base)
            if new != expr and d.tensor.base not in new.atoms(sp.IndexedBase):
                expr = new
    return expr


def _positive_difference(expr):
    """``-a (b - c)`` → ``a (c - b)``: a minus sign moved into a difference factor."""
    if isinstance(expr, sp.Mul) and expr.could_extract_minus_sign():
        for f in expr.args:
            if isinstance(f, sp.Add) and len(f.args) == 2:
                return (-expr / f) * (-f)
    return expr


def by_upstream(expr, forward) -> list:
    """The terms of a sum grouped by the upstream gradients they read, and where on them: tensors ``forward``
    does not declare (``dY``, a shared let's ``dA``), and in a second-order forward the first order's gradients
    of its shared lets (lets there). Terms that read different ones cannot cancel one another, and one fraction over
    their common denominator only multiplies what may overflow (4 cosh²(x/2) · … / 4 cosh²(x/2)). One group (the
    whole expression) when there is no forward or no such split.

    A second-order forward's upstreams dY are not split on: its outputs dβ = Σ dY are read as lets beside them,
    and (S dY − dβ) is 0 at one sample where S dY and dβ apart overflow."""
    if forward is None or not isinstance(expr, sp.Add):
        return [expr]
    linear = set(forward.adjoint_lets)
    groups = {}
    for term in expr.args:
        # By base and offset: an LSTM's dA reads dcell[p, q − H] in the forget block and dcell[p, q] in the
        # input block, two blocks that never meet.
        reads = term.atoms(sp.Indexed)
        foreign = {(str(a.base.label), tuple(_offset(i) for i in a.indices)) for a in reads}
        # A scalar upstream (dL beside other outputs, a scalar let's gradient) is a bare base.
        foreign |= {(str(b.label), ()) for b in term.atoms(sp.IndexedBase) if b not in {a.base for a in reads}}
        foreign = frozenset(f for f in foreign if f[0] not in forward.tensors or f[0] in linear)
        groups.setdefault(foreign, []).append(term)
    return [sp.Add(*terms) for terms in groups.values()]


def _offset(index):
    """What an index expression adds to its indices: −H for q − H, 0 for a plain index."""
    if index.has(sp.Indexed):   # a gather (y[p]): where it reads is not known
        return sp.S.Zero
    return index.subs({i: 0 for i in index.atoms(sp.Idx)})


def same_sums(expr):
    """Sums that are one sum but for the names of their summed indices (Σ_b Y_rb dY_rb and Σ_c Y_rc dY_rc, from
    two terms of a product rule) written alike, so that the terms holding them combine (2 t₁ t₂, not t₁ t₂ + t₁ t₂′)."""
    seen = {}

    def one(s):
        bound = [limit[0] for limit in s.limits]
        key = s.xreplace({k: sp.Idx(f"_bound{n}", (k.lower, k.upper)) for n, k in enumerate(bound)})
        return seen.setdefault(key, s)
    return expr.replace(lambda e: isinstance(e, sp.Sum), one)


def complete_products(expr, forward):
    """A second-order forward's result is bilinear in an upstream u (dY) and a direction w (vX):
    ``k u w + u A + w B + C = k (u + B/k)(w + A/k) + (C − A B/k)``, each read at the same indices. The product form
    is 0 where u and w equal their projections (softmax's dY_u = Σ_q Y_q dY_q on one class), where the expanded terms
    leave rounding, and overflow apart at a large u. Taken only where A B/k cancels against C (no term more: a new
    product G K could overflow where none of the terms did) and k divides nothing that was not divided already."""
    if not forward.upstream_inputs or not isinstance(expr, sp.Add):
        return expr
    upstreams = set(forward.upstream_inputs)
    directions = set(forward.upstream_names.values())

    def linear(t, r):   # t is r times what does not hold r
        return r in sp.Mul.make_args(t) and not (t / r).has(r)

    def reads(names):   # a factor of each term that holds it, outside every sum
        found = {r for r in expr.atoms(sp.Indexed) if str(r.base.label) in names}
        return [r for r in found if not any(s.has(r) for s in expr.atoms(sp.Sum))
                and all(linear(t, r) for t in expr.args if t.has(r))]

    def divided(e):   # what e divides by: the bases of its negative powers
        return {p.base for p in e.atoms(sp.Pow) if p.exp.is_negative}
    for u in sorted(reads(upstreams), key=str):
        for w in sorted(reads(directions), key=str):
            both = [t for t in expr.args if t.has(u) and t.has(w)]
            if not both:
                continue
            k = sp.Add(*[t / (u * w) for t in both])
            A = sp.Add(*[t / u for t in expr.args if t.has(u) and not t.has(w)])
            B = sp.Add(*[t / w for t in expr.args if t.has(w) and not t.has(u)])
            if A == 0 or B == 0:
                continue
            a, b = sp.expand(A / k), sp.expand(B / k)
            if not divided(a) | divided(b) <= divided(A) | divided(B):
                continue   # k does not cancel: a division by what may be 0
            C = sp.Add(*[t for t in expr.args if not t.has(u) and not t.has(w)])
            rest = sp.expand(C - k * a * b)
            if rest != 0 and (C == 0 or len(sp.Add.make_args(rest)) > len(sp.Add.make_args(C))):
                continue
            new = k * (u + b) * (w + a) + rest
            if sp.count_ops(new) <= sp.count_ops(expr):
                return new
    return expr


def compact(expr, forward=None):
    """One fraction, common factors pulled out, leading minus moved into a difference; with ``forward``, one per
    group of terms reading the same upstream gradients (``by_upstream``), then the factors all groups share pulled
    out of their sum (a product, not a common denominator)."""
    if isinstance(expr, sp.Piecewise):
        return expr
    expr = same_sums(expr)
    if forward is not None:
        expr = complete_products(expr, forward)
    groups = by_upstream(expr, forward)
    if len(groups) > 1:
        # Factors every group shares still come out: a difference over a shared factor is 0 where its terms are
        # equal (batch norm's second order at one sample), finite where each product alone overflows.
        each = sp.Add(*[compact(g) for g in groups])
        shared = budget.attempt(sp.factor_terms, each, "collect into a compact form")
        return each if shared is None or sp.count_ops(shared) > sp.count_ops(each) else _positive_difference(shared)
    new = budget.attempt(lambda e: sp.factor_terms(sp.together(e)), expr, "collect into a compact form")
    if new is None or sp.count_ops(new) > sp.count_ops(expr):
        new = expr
    return _positive_difference(new)
