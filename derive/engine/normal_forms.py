"""Piecewise normal forms: what a kink means, fixed before differentiating.

SymPy differentiates ``Max(0, x)`` to ``Heaviside(x)`` (½ at 0), ``Abs`` to
``sign`` and ``sign`` to ``DiracDelta``. PyTorch's conventions are different,
so before differentiating every such function is written as a ``Piecewise``
whose branch at a tie carries PyTorch's slope:

- ``max(u, c)`` / ``min(u, c)`` with ``c`` free of tensors (ReLU): the tie goes to
  the constant branch, slope 0 (``relu'(0) = 0``);
- a clamp ``min(hi, max(lo, u))`` (either nesting, ``lo < hi``): its value is ``u``
  on the closed inside, and at a bound the slope is the constant branch's, 0
  (``torch.clamp``, ``F.hardtanh``, ``F.relu6``);
- ``max(a, b)`` of two tensor expressions: at a tie each gets half (``torch.maximum``);
- ``|u|`` and ``sign(u)``: slope 0 at 0 (``torch.abs``, ``torch.sign``);
- ``Heaviside(u)`` is 0 at 0.

``clean_piecewise`` keeps derivatives of such forms small: nested Piecewise
flattened, each conjunction's bounds on one subject reduced to the tightest
(``u ≤ 0 ∧ u < 0`` is ``u < 0``; ``u > 0 ∧ u < 0`` is false; ``t ≥ 0 ∧ t ≤ 0``
is ``t = 0``; bounds compared by the sign of their difference, hyper-parameters
positive), branches that can never be taken dropped (also after the earlier
branches, with hyper-parameter bounds: Huber's ``else 0`` after ``d > 0``,
``d < 0``), a condition whose pieces form one interval written as that interval
(``−δ ≤ d ≤ δ``), neighbours with equal values merged. The derivation cleans
every step (a sum folds the selects in its body into one).
"""
from __future__ import annotations

import sympy as sp


def _is_constant(e) -> bool:
    """Free of tensors: a number, a scalar hyper-parameter, a dimension."""
    return not e.has(sp.Indexed, sp.IndexedBase)


def _known_less(a, b) -> bool:
    return bool(sp.simplify(b - a).is_positive)


def _clamp(e):
    """``(u, lo, hi)`` for min(hi, max(lo, u)) or max(lo, min(hi, u)) with constant lo < hi, else None."""
    outer, inner_type = (sp.Min, sp.Max) if isinstance(e, sp.Min) else (sp.Max, sp.Min)
    if not isinstance(e, outer) or len(e.args) != 2:
        return None
    consts = [a for a in e.args if _is_constant(a)]
    inner = [a for a in e.args if isinstance(a, inner_type) and len(a.args) == 2]
    if len(consts) != 1 or len(inner) != 1:
        return None
    inner_consts = [a for a in inner[0].args if _is_constant(a)]
    us = [a for a in inner[0].args if not _is_constant(a)]
    if len(inner_consts) != 1 or len(us) != 1:
        return None
    lo, hi = (inner_consts[0], consts[0]) if outer is sp.Min else (consts[0], inner_consts[0])
    return (us[0], lo, hi) if _known_less(lo, hi) else None


def _extremum(args, greater: bool):
    """Max (greater) or Min of already converted operands, as a Piecewise."""
    consts = [a for a in args if _is_constant(a)]
    variables = [a for a in args if not _is_constant(a)]
    if not variables:
        return (sp.Max if greater else sp.Min)(*consts)
    beats = sp.StrictGreaterThan if greater else sp.StrictLessThan
    acc = variables[0]
    for b in variables[1:]:
        # Two tensor expressions: each gets half the slope at a tie, as torch.maximum/minimum.
        acc = _fold(sp.Piecewise((acc, beats(acc, b)), (b, beats(b, acc)), ((acc + b) / 2, True)))
    if consts:
        c = (sp.Max if greater else sp.Min)(*consts)
        acc = _fold(sp.Piecewise((acc, beats(acc, c)), (c, True)))  # the tie takes the constant branch
    return acc


def _convert(e):
    if e.is_Atom or isinstance(e, (sp.Indexed, sp.IndexedBase)):
        return e
    if isinstance(e, (sp.Min, sp.Max)):
        found = _clamp(e)
        if found is not None:
            u, lo, hi = found
            u = _convert(u)
            inside = sp.And(sp.StrictGreaterThan(u, lo), sp.StrictLessThan(u, hi))
            return _fold(sp.Piecewise((u, inside), (lo, sp.LessThan(u, lo)), (hi, True)))
        return _extremum([_convert(a) for a in e.args], isinstance(e, sp.Max))
    args = [_convert(a) for a in e.args]
    if isinstance(e, sp.Heaviside):
        return _fold(sp.Piecewise((sp.S.One, sp.StrictGreaterThan(args[0], 0)), (sp.S.Zero, True)))
    if isinstance(e, sp.Abs) and not _is_constant(args[0]):
        u = args[0]
        return _fold(sp.Piecewise((u, u > 0), (-u, u < 0), (sp.S.Zero, True)))
    if isinstance(e, sp.sign) and not _is_constant(args[0]):
        u = args[0]
        return _fold(sp.Piecewise((sp.S.One, u > 0), (sp.S.NegativeOne, u < 0), (sp.S.Zero, True)))
    if isinstance(e, sp.core.relational.Relational):
        return _fold_relational(e.func, *args)
    return e.func(*args) if args != list(e.args) else e


def _fold_relational(rel, a, b):
    """``Piecewise(...) > c`` as a condition without Piecewise: (p ∧ (a₁ > c)) ∨ (¬p ∧ (a₂ > c))."""
    pieces = [x for x in (a, b) if isinstance(x, sp.Piecewise)]
    if not pieces:
        return rel(a, b)
    pw = pieces[0]
    out, earlier = [], []
    for value, cond in pw.args:
        branch = rel(value, b) if pw is a else rel(a, value)
        branch = _fold_relational(branch.func, *branch.args) if isinstance(branch, sp.core.relational.Relational) else branch
        out.append(sp.And(cond, *[sp.Not(c) for c in earlier], branch))
        earlier.append(cond)
    return sp.Or(*out)


def _fold(pw):
    """Flatten nested Piecewise values into one Piecewise."""
    return clean_piecewise(pw)


def to_piecewise(expr):
    """Max, Min, Abs, sign and Heaviside of tensors as Piecewise with PyTorch's slopes at the ties."""
    if not expr.has(sp.Max, sp.Min, sp.Heaviside, sp.Abs, sp.sign, sp.Piecewise):
        return expr
    return _convert(expr)


# -- cleaning ------------------------------------------------------------------

def _flatten(pw):
    branches = []
    for value, cond in pw.args:
        if isinstance(value, sp.Piecewise):
            for v, c in value.args:
                branches.append((v, sp.And(cond, c)))
        else:
            branches.append((value, cond))
    return branches


def _subject(rel):
    """``(v, sign)`` with ``rel`` comparing ``sign·v`` with a constant, else None."""
    d = sp.expand(rel.lhs - rel.rhs)
    v = sp.Add(*[t for t in sp.Add.make_args(d) if not _is_constant(t)])
    if v == 0:
        return None
    return (-v, -1) if v.could_extract_minus_sign() else (v, 1)


def condition_sets(conds):
    """``(v, sets)``: each condition as the set of values of one subject ``v`` it admits, or None.

    ``[u > 0, u < -1, True]`` gives ``(u, [(0, ∞), (−∞, −1), ℝ])``; conditions
    that compare several different expressions give None.
    """
    rels = set().union(*[c.atoms(sp.core.relational.Relational) for c in conds if c not in (sp.true, sp.false)])
    subjects = {_subject(r)[0] if _subject(r) else None for r in rels}
    if len(subjects) != 1 or None in subjects:
        return None
    (v,) = subjects
    d = sp.Dummy("u", real=True)
    try:
        out = []
        for c in conds:
            if c in (sp.true, sp.false):
                out.append(sp.S.Reals if c == sp.true else sp.S.EmptySet)
                continue
            swapped = c.replace(lambda r: isinstance(r, sp.core.relational.Relational),
                                lambda r: r.func(sp.expand(r.lhs - r.rhs).subs(v, d), 0))
            if swapped.has(sp.Indexed):
                return None
            out.append(swapped.as_set() if not swapped.free_symbols - {d} else _as_set(swapped, d))
        return v, out
    except (NotImplementedError, TypeError, ValueError):
        return None


_OPEN = {sp.StrictGreaterThan: (True, True), sp.GreaterThan: (True, False),
         sp.StrictLessThan: (False, True), sp.LessThan: (False, False)}


def _as_set(cond, d):
    """The values of ``d`` that ``cond`` admits, its bounds holding hyper-parameters (``d ≤ δ``): SymPy's
    ``as_set`` takes one variable only. Each comparison must be linear in ``d`` with a number as its slope."""
    if cond == sp.true:
        return sp.S.Reals
    if cond == sp.false:
        return sp.S.EmptySet
    if isinstance(cond, sp.And):
        parts = [_as_set(a, d) for a in cond.args]
        out = parts[0]
        for p in parts[1:]:
            out = _meet(out, p)
        return out
    if isinstance(cond, sp.Or):
        return sp.Union(*[_as_set(a, d) for a in cond.args])
    if isinstance(cond, sp.Not):
        return sp.Complement(sp.S.Reals, _as_set(cond.args[0], d))
    if not isinstance(cond, sp.core.relational.Relational):
        raise NotImplementedError(cond)
    e = sp.expand(cond.lhs - cond.rhs)
    slope = e.coeff(d)
    rest = sp.expand(e - slope * d)
    if not slope.is_number or slope == 0 or rest.has(d):
        raise NotImplementedError(cond)
    b = -rest / slope
    if isinstance(cond, sp.Eq):
        return sp.FiniteSet(b)
    if isinstance(cond, sp.Ne):
        return sp.Complement(sp.S.Reals, sp.FiniteSet(b))
    lower, strict = _OPEN[type(cond)]
    if slope < 0:
        lower = not lower
    return sp.Interval(b, sp.oo, left_open=strict) if lower else sp.Interval(-sp.oo, b, right_open=strict)


def branch_domains(pw):
    """``(v, [set where branch i is the one taken])`` for a Piecewise over one subject, or None."""
    found = condition_sets([c for _, c in pw.args])
    if found is None:
        return None
    v, sets = found
    taken, covered = [], sp.S.EmptySet
    for s in sets:
        taken.append(sp.Complement(s, covered))
        covered = sp.Union(covered, s)
    return v, taken


_LOWER = {sp.StrictGreaterThan: True, sp.GreaterThan: True, sp.StrictLessThan: False, sp.LessThan: False}


def _bound(rel):
    """``(v, lower, strict, b)``: ``rel`` says ``v > b`` (lower, strict), ``v ≥ b``, ``v < b`` or ``v ≤ b``, with
    ``b`` free of tensors (a number, a hyper-parameter); None for any other condition."""
    if type(rel) not in _LOWER:
        return None
    d = sp.expand(rel.lhs - rel.rhs)
    v = sp.Add(*[t for t in sp.Add.make_args(d) if not _is_constant(t)])
    if v == 0:
        return None
    lower = _LOWER[type(rel)]
    if v.could_extract_minus_sign():  # −v + k > 0  ⇔  v < k
        v, lower = -v, not lower
        return v, lower, type(rel) in (sp.StrictGreaterThan, sp.StrictLessThan), d + v
    return v, lower, type(rel) in (sp.StrictGreaterThan, sp.StrictLessThan), v - d


def _tightest(bounds, lower: bool):
    """The bounds ``(b, strict, rel)`` on one side that no other implies: of ``v > a`` and ``v > b`` with ``a − b`` of
    known sign, the tighter; of two at the same value, the strict."""
    kept = []
    for b, strict, rel in bounds:
        beaten = False
        for n, (c, t, r) in enumerate(kept):
            diff = b - c if lower else c - b   # > 0: b is the tighter
            if diff.is_zero:
                kept[n] = (c, t, r) if t or not strict else (b, strict, rel)
                beaten = True
            elif diff.is_positive:
                kept[n] = None
            elif diff.is_negative:
                beaten = True
        kept = [k for k in kept if k is not None]
        if not beaten:
            kept.append((b, strict, rel))
    return kept


def _prune_and(conj):
    """A conjunction with each subject's bounds reduced to the tightest (``t > 0 ∧ t ≥ 0`` is ``t > 0``), false
    when they leave nothing (``X > 0 ∧ X < 0``), ``t = b`` when they meet (``t ≥ 0 ∧ t ≤ 0``)."""
    sides, out = {}, []
    for a in conj.args:
        found = _bound(a)
        if found is None:
            out.append(a)
            continue
        v, lower, strict, b = found
        sides.setdefault(v, ([], []))[0 if lower else 1].append((b, strict, a))
    for v, (los, his) in sides.items():
        los, his = _tightest(los, True), _tightest(his, False)
        pinned = []
        for lo, ls, lrel in los:
            for hi, hs, hrel in his:
                gap = lo - hi
                if gap.is_positive or (gap.is_zero and (ls or hs)):
                    return sp.false
                if gap.is_zero:
                    pinned.append((lrel, hrel, sp.Eq(v, lo)))
        gone = {r for p in pinned for r in p[:2]}
        out += [p[2] for p in pinned] + [r for _, _, r in los + his if r not in gone]
    return conj if set(out) == set(conj.args) else sp.And(*out)


def prune_condition(cond):
    """``cond`` with every conjunction pruned (``_prune_and``); disjuncts that became false drop out."""
    if cond in (sp.true, sp.false) or not isinstance(cond, sp.logic.boolalg.Boolean):
        return cond
    return cond.replace(lambda e: isinstance(e, sp.And), _prune_and)


def clean_piecewise(expr):
    """Nested Piecewise flattened, branches never taken dropped, redundant bounds pruned, equal neighbours merged."""
    if not expr.has(sp.Piecewise):
        return expr
    return expr.replace(lambda e: isinstance(e, sp.Piecewise), _clean_one)


def _clean_one(pw):
    branches = [(v, prune_condition(c)) for v, c in _flatten(pw)]
    branches = [(v, c) for v, c in branches if c != sp.false]
    found = condition_sets([c for _, c in branches])
    sets = found[1] if found is not None else None
    if sets is not None:
        kept, covered = [], sp.S.EmptySet
        for (v, c), s in zip(branches, sets):
            fresh = sp.Complement(s, covered)
            if fresh == sp.S.EmptySet:
                continue  # never taken
            covered = sp.Union(covered, s)
            whole = sp.Complement(sp.S.Reals, covered) == sp.S.EmptySet
            kept.append((v, sp.true if whole else _as_interval(c, s, found[0])))
            if kept[-1][1] == sp.true:
                break
        branches = kept
    else:
        for n, (v, c) in enumerate(branches):
            if c == sp.true:
                branches = branches[:n + 1]
                break
    merged = []
    for v, c in branches:
        if merged and merged[-1][0] == v:
            merged[-1] = (v, sp.Or(merged[-1][1], c))
        else:
            merged.append((v, c))
    if not merged:
        return sp.S.Zero
    if len(merged) == 1 and merged[0][1] == sp.true:
        return merged[0][0]
    return sp.Piecewise(*merged)


def _le(a, b) -> bool:
    return bool((b - a).is_extended_nonnegative)


def _join(a, b):
    """``a ∪ b`` as one Interval when the two overlap or touch (endpoints compared by sign), else None."""
    if isinstance(a, sp.FiniteSet) and isinstance(b, sp.FiniteSet):
        return a if a == b else None
    if isinstance(a, sp.FiniteSet):
        a, b = b, a
    if isinstance(b, sp.FiniteSet):
        if len(b) != 1:
            return None
        (p,) = b
        if _le(a.start, p) and _le(p, a.end):
            return sp.Interval(a.start, a.end, a.left_open and p != a.start, a.right_open and p != a.end)
        return None
    if not (_le(b.start, a.end) and _le(a.start, b.end)):
        return None
    if (b.start == a.end and a.right_open and b.left_open) or (a.start == b.end and b.right_open and a.left_open):
        return None  # (.., p) ∪ (p, ..) misses p
    lo = a if _le(a.start, b.start) else b if _le(b.start, a.start) else None
    hi = a if _le(b.end, a.end) else b if _le(a.end, b.end) else None
    if lo is None or hi is None:
        return None
    left_open = lo.left_open and not (b.start == a.start and not (a.left_open and b.left_open))
    right_open = hi.right_open and not (b.end == a.end and not (a.right_open and b.right_open))
    return sp.Interval(lo.start, hi.end, left_open, right_open)


def _meet(a, b):
    """``a ∩ b`` for two intervals with endpoints compared by sign (SymPy leaves ``(−∞, 0) ∩ [−δ, ∞)`` unevaluated)."""
    if not (isinstance(a, sp.Interval) and isinstance(b, sp.Interval)):
        return sp.Intersection(a, b)
    if _le(b.start, a.start) and _le(a.start, b.start):
        start, left_open = a.start, a.left_open or b.left_open
    elif _le(b.start, a.start) or _le(a.start, b.start):
        start, left_open = (a.start, a.left_open) if _le(b.start, a.start) else (b.start, b.left_open)
    else:
        return sp.Intersection(a, b)
    if _le(a.end, b.end) and _le(b.end, a.end):
        end, right_open = a.end, a.right_open or b.right_open
    elif _le(a.end, b.end) or _le(b.end, a.end):
        end, right_open = (a.end, a.right_open) if _le(a.end, b.end) else (b.end, b.right_open)
    else:
        return sp.Intersection(a, b)
    return sp.Interval(start, end, left_open, right_open)


def _as_interval(cond, s, v):
    """``cond``, or ``lo ≤ v ≤ hi`` where the set it admits is one interval written in more pieces
    (``v = 0 ∨ (0 < v ≤ δ) ∨ (−δ ≤ v < 0)`` is ``−δ ≤ v ≤ δ``)."""
    parts = list(s.args) if isinstance(s, sp.Union) else [s]
    if len(parts) < 2 or not all(isinstance(p, (sp.Interval, sp.FiniteSet)) for p in parts):
        return cond
    while len(parts) > 1:
        for i in range(len(parts)):
            for j in range(i + 1, len(parts)):
                joined = _join(parts[i], parts[j])
                if joined is not None:
                    parts = [p for n, p in enumerate(parts) if n not in (i, j)] + [joined]
                    break
            else:
                continue
            break
        else:
            return cond
    simpler = parts[0].as_relational(v)
    return simpler if sp.count_ops(simpler) < sp.count_ops(cond) else cond
