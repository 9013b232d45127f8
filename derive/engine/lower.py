"""Lowering: kernel statements in index notation → array operations (``arrays.py``), once per backend.

Every sub-expression gets a *layout*: the indices it carries, in the order of
the statement's left-hand side followed by the indices of enclosing sums. A
tensor element becomes the array transposed into that order; an operand
missing an axis is expanded so broadcasting lines it up; a sum of a product of
tensors becomes a matrix product (``recognise.contraction``), a convolution
(``recognise.correlation``, ``correlation_weight``) or an einsum whose
subscripts come from our own index lists (never SymPy's array printer,
sympy#30395); any other sum reduces its body's trailing axes.

What differs between backends is a capability flag, never a spelling:
``in_place`` (statements built as steps on their own array: ``Y = X @ W.T``
then ``Y += b``), ``fused_add_matmul`` (``c + A @ B`` as one operation) and
``einsum_products`` (Σ of a product over the same indices as one einsum, or as
a product and then a sum).
"""
from __future__ import annotations

import string
from dataclasses import dataclass

import sympy as sp

from . import extents, recognise
from .arrays import (Accumulate, AddMatMul, AddMul, ApplyInPlace, ArgMax, Assign, AtMaxGather, CheckInteger,
                     CheckLabels, Clamp,
                     AxisSize, ClampInPlace, Correlate, CorrelateTransposed, CorrelateWeight, Einsum, Expand, Extent,
                     Extremum, Filled, Flip, Full, GridScatter, GridView, Identity, Item, Map, Masked, MatMul,
                     MaxPool, MaxPoolScatter, Mesh, MinusInfinity, Name, Number, OnesLike, Permute, Product,
                     Promote, Reduce, ZeroUpstream, ScatterAdd, SelectInPlace, Shapes, Slot, Take, Typed, Update, Where,
                     WindowReduce, symbols)
from .errors import PrintError, stage
from .magnitudes import at_most_one, inlined, shrinking_first
from .ir import (AtMax, MaxOver, MaxWithZeros, OnGrid, affine, extent, free_indices, gathered, gathers, natural_order,
                 shifted, window_key)
from .text import index_text, positive_first


# Nodes that are arrays of their own (lowered whole) inside elementwise arithmetic.
_ARRAYS = (sp.Indexed, sp.IndexedBase, sp.Sum, MaxOver, AtMax, OnGrid, sp.KroneckerDelta, sp.Piecewise,
           sp.Min, sp.Max)


def _has_array(e) -> bool:
    return isinstance(e, sp.Basic) and e.has(sp.Indexed, sp.IndexedBase, sp.Idx)


def _is_reciprocal(a) -> bool:
    return isinstance(a, sp.Pow) and a.exp.is_negative


class Lowering:
    """Lowers the statements of one kernel for one set of capabilities."""

    def __init__(self, caps, like: str | None = None, deferrable=(), derived=(), backward: bool = False,
                 arg_maxima=None, taken=()):
        self.caps = caps
        # Names of the kernel (arrays, scalars, sizes): local names the lowering adds avoid them.
        self.taken = set(taken)
        # A forward: statement -> the arg-max it also returns; a backward: window maximum -> the saved arg-max.
        self.arg_maxima = dict(arg_maxima or {})
        # Statements built in place (a backward kernel, or any with ``in_place_forward``).
        self.steps_in_place = caps.in_place and (backward or caps.in_place_forward)
        # Extents the engine derived from the reads (a convolution's Ho): a window over one is an output.
        self.derived = set(derived)
        # An argument whose dtype and device new arrays (an identity, a number broadcast) take.
        self.like = like
        # Gradients that are one matrix product nothing later reads: deferred (``Product``).
        self.deferrable = set(deferrable)
        self._layout = ()
        self._fill = None
        # Each statement's right-hand side, by name: what a later product's factors hold (``magnitudes``).
        self.values = {}

    # -- layout ------------------------------------------------------------------
    def layout_of(self, e) -> tuple:
        free = free_indices(e) if isinstance(e, sp.Basic) else set()
        return tuple(i for i in self._layout if i in free)

    @staticmethod
    def _slots(have, target):
        return [i in have for i in target[target.index(have[0]):]]

    def _needs_expand(self, e, target) -> bool:
        have = self.layout_of(e)
        return bool(have) and not all(self._slots(have, target))

    def expand(self, e, op, target):
        """``op`` (in e's layout) with new axes so it broadcasts in ``target``.

        Broadcasting aligns trailing axes, so leading missing axes need nothing
        and trailing kept axes can be left out.
        """
        have = self.layout_of(e)
        if not have:
            return op
        slots = self._slots(have, target)
        while slots and slots[-1]:
            slots.pop()
        return Expand(op, tuple(slots)) if slots else op

    def operand(self, e, target):
        """e lowered and broadcast to ``target``; a number stays a Number."""
        op = self.expr(e)
        return self.expand(e, op, target) if _has_array(e) else op

    def _shape(self, indices) -> tuple:
        return tuple(extent(i) for i in indices)

    def _like(self, e) -> str | None:
        tensors = sorted(e.atoms(sp.Indexed), key=str)
        return str(tensors[0].base.label) if tensors else self.like

    # -- statements ----------------------------------------------------------------
    def statement(self, st) -> list:
        """The instructions that compute one statement."""
        steps = self._statement(st)
        self.values[st.name] = st.rhs
        return steps

    def _statement(self, st) -> list:
        if st.rhs.has(AtMax):
            found = recognise.scatter(st)
            if found is not None:
                return self.scatter(st, found)
        self._layout = st.indices
        if st.name in self.arg_maxima:   # a pool's maximum and, for the backward, its arg-max
            pool = recognise.pooling(st.rhs.body, st.rhs.over)
            op = MaxPool(self._arranged(pool.x, pool.x_axes), *self._pool_numbers(pool),
                         self._numbers(extent(o) for o in pool.lead[2:]), argmax=True)
            return [Assign((st.name, self.arg_maxima[st.name]), op)]
        if st.name in self.deferrable:
            product = recognise.contraction(st.rhs, st.indices)
            if product is not None:
                return [Assign(st.name, Product(st.name, *self._factors(product)))]
        steps = self.in_place(st)
        if steps is not None:
            return steps
        self._layout = st.indices
        op = self.expr(st.rhs)
        have = self.layout_of(st.rhs)
        if have != st.indices:
            shape = self._shape(st.indices)
            op = Full(self.expand(st.rhs, op, st.indices), shape) if have else \
                Filled(op, shape, self._like(st.rhs))  # a number (dX = dL/S): of the kernel's dtype and device
        return [Assign(st.name, op)]

    # -- in place ------------------------------------------------------------------
    def in_place(self, st):
        """The statement as steps on its own new array, where its tree allows it: ``Y = X @ W.T`` then
        ``Y += b``, rather than a new array for every operation (fewer allocations and passes).

        One operand of each sum, product or function is the array being built; the others are
        lowered as they would be. None where that saves nothing or the tree has no such path.
        """
        if not st.indices or not self.steps_in_place:
            return None
        self._layout = tuple(st.indices)
        steps = self._steps(st.rhs, st.name)
        if steps is None or len(steps) < 2:
            return None
        return steps

    def _steps(self, e, acc):
        """Instructions that leave e's value in the new array ``acc`` (in the statement's layout), or None."""
        target = self._layout
        if self.layout_of(e) != target or e.has(OnGrid, AtMax, MaxOver):
            return None
        if isinstance(e, sp.Add) and self._fused(e) is not None:
            return self._fresh(e, acc)
        if isinstance(e, sp.Mul) and any(isinstance(a, sp.Piecewise) for a in e.args):
            pieces = [a for a in e.args if isinstance(a, sp.Piecewise)]
            if len(pieces) != 1:
                return None
            rest = sp.Mul(*[a for a in e.args if a is not pieces[0]])
            return self._steps(sp.Piecewise(*[(rest * v, c) for v, c in pieces[0].args]), acc)
        if isinstance(e, (sp.Add, sp.Mul)):
            args = positive_first(list(e.args)) if isinstance(e, sp.Add) else shrinking_first(e.args, self.values)
            for n, head in enumerate(args):
                # A reciprocal never leads (1/b then times a may overflow where a/b does not), nor does a
                # negated read (P − T is one operation as it is: −T then += P would be two).
                negated = isinstance(head, sp.Mul) and len(head.args) == 2 and head.args[0] == -1
                if self.layout_of(head) == target and not _is_reciprocal(head) and not negated:
                    steps = self._steps(head, acc) or self._fresh(head, acc)
                    if steps:
                        break
            else:
                return None
            others = args[:n] + args[n + 1:]
            if isinstance(e, sp.Add):
                for a in others:
                    op, a = ("-", -a) if a.as_coeff_Mul()[0].is_negative else ("+", a)
                    steps.append(Update(acc, op, self.operand(a, target)))
                return steps
            # Factors over every axis one by one; the smaller ones (vectors, numbers) multiplied together
            # first and applied in one pass, numerator then denominator (but for a constant, below).
            full = [a for a in others if self.layout_of(a) == target]
            small = [a for a in others if a not in full]
            for a in full:
                op, a = ("/", sp.Pow(a.base, -a.exp)) if _is_reciprocal(a) else ("*", a)
                steps.append(Update(acc, op, self.operand(a, target)))
            # A constant that may be larger than one is applied last, on its own: 2 dvar overflows at the
            # largest dvar where 0 · dvar · 2 is the true 0 (a product that is exactly zero stays zero). Not
            # one that may be 0 (1 − α, a padding): there α dvar is the 0 that dvar · α might not be.
            constant = sp.Mul(*[a for a in small if not _has_array(a)])
            nonzero = all(f.is_nonzero or (f.is_Pow and f.exp.is_negative) for f in sp.Mul.make_args(constant))
            late = constant if not at_most_one(constant, self.values) and nonzero else sp.S.One
            reads = [a for a in small if late == 1 or _has_array(a)]
            num = sp.Mul(*[a for a in reads if not _is_reciprocal(a)])
            den = sp.Mul(*[sp.Pow(a.base, -a.exp) for a in reads if _is_reciprocal(a)])
            late_num, late_den = sp.fraction(late)
            last = ("/", late_den) if late_num == 1 else ("*", late)
            steps += [Update(acc, op, self.operand(f, target))
                      for op, f in (("*", num), ("/", den), last) if f != 1]
            return steps
        if isinstance(e, sp.Function) and len(e.args) == 1 and not isinstance(e, _ARRAYS):
            inner = self._steps(e.args[0], acc)
            if inner is None:
                return self._fresh(e, acc)
            return inner + [ApplyInPlace(acc, type(e).__name__)]
        if isinstance(e, (sp.Min, sp.Max)):
            arrays = [a for a in e.args if a.has(sp.Indexed)]
            inner = self._steps(arrays[0], acc) if len(arrays) == 1 else None
            if inner is None:
                return self._fresh(e, acc)
            bound = Number((sp.Max if isinstance(e, sp.Max) else sp.Min)(*[a for a in e.args if a is not arrays[0]]))
            low, high = (bound, None) if isinstance(e, sp.Max) else (None, bound)
            return inner + [ClampInPlace(acc, low, high)]
        if isinstance(e, sp.Piecewise):
            if e.args[-1].cond != sp.true or not any(_has_array(c) for _, c in e.args):
                return None  # a select on hyper-parameters alone takes one branch whole: a Map, not a mask
            last = e.args[-1].expr
            steps = self._steps(last, acc) or self._fresh(last, acc)
            if not steps:
                return None
            for value, cond in reversed(e.args[:-1]):
                array = value.has(sp.Indexed)
                # Both over every axis (nothing to broadcast): the element-for-element form.
                whole = self.layout_of(cond) == target and (not array or self.layout_of(value) == target)
                steps.append(SelectInPlace(acc, self.condition(cond, target), self.operand(value, target), whole,
                                           not self.layout_of(value)))
            return steps
        return self._fresh(e, acc)

    def _fresh(self, e, acc):
        """``acc = <e>`` where e makes a new array in the statement's layout (not a view of an argument)."""
        if self.layout_of(e) != self._layout or not e.has(sp.Indexed):
            return None
        if isinstance(e, (sp.Add, sp.Mul, sp.Pow, sp.Min, sp.Max, sp.Piecewise, sp.Sum)) or \
                (isinstance(e, sp.Function) and not isinstance(e, _ARRAYS)):
            return [Assign(acc, self.expr(e))]
        return None

    # -- expressions -------------------------------------------------------------------
    def expr(self, e):
        """The array operation computing e in the current layout."""
        if not _has_array(e):
            if e.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
                raise PrintError("the expression holds nan or an infinity")
            if e.has(sp.I):
                raise PrintError("a kernel cannot compute with the imaginary unit")
            return Number(e)
        if isinstance(e, sp.Indexed):
            return self.indexed(e)
        if isinstance(e, sp.IndexedBase):
            return Name(str(e.label))
        if isinstance(e, sp.Idx):
            raise PrintError(f"index {e} used as a value")
        if isinstance(e, sp.Sum):
            return self.sum(e)
        if isinstance(e, MaxOver):
            return self.max_over(e)
        if isinstance(e, AtMax):
            return self.at_max(e)
        if isinstance(e, OnGrid):   # a bracket as a value (1/α + [q + 1 ∈ 0..D − 1]): 1 or 0 in the arrays' dtype
            return Where(self.on_grid(e), Typed(self.expr(sp.S.One), self.like), Number(sp.S.Zero))
        if isinstance(e, sp.KroneckerDelta):
            return self.delta(e)
        if isinstance(e, sp.Piecewise):
            return self.piecewise(e)
        if isinstance(e, (sp.Min, sp.Max)):
            return self.extremum(e)
        if isinstance(e, sp.Mul):
            grids = [a for a in e.args if isinstance(a, OnGrid)]
            if grids:
                return self.masked(e, grids)
            pieces = [a for a in e.args if isinstance(a, sp.Piecewise)]
            if len(pieces) == 1:
                # c · Piecewise((a, p), (b, True)) = Piecewise((c a, p), (c b, True)): one select, no product.
                rest = sp.Mul(*[a for a in e.args if a is not pieces[0]])  # not e / piece: SymPy inverts each branch
                return self.piecewise(sp.Piecewise(*[(rest * v, c) for v, c in pieces[0].args]))
        if isinstance(e, sp.Add):
            fused = self._fused(e)
            if fused is not None:
                return fused
        return self.map(e)

    def map(self, e):
        """Elementwise arithmetic: e with each array in it replaced by a slot for its operation.

        Factors and terms over fewer axes than the map are computed at their own size and broadcast
        once: the smaller factors of a product together, numerator over denominator (never a
        reciprocal first: 1/b then times a may overflow where a/b does not).
        """
        target = self.layout_of(e)
        args = []

        def slot(a):
            s = Slot(f"_{len(args)}")
            args.append((s, self.operand(a, target)))
            return s

        def smaller(a):
            return _has_array(a) and self.layout_of(a) != target

        def ordered(factors) -> list:
            """The factors atomised, those at most one in magnitude first (``magnitudes``); a divisor of at least 1
            among them divides first, in parentheses: (e/(1 + e)²) C dY, not e C dY/(1 + e)²."""
            numbers = [f for f in factors if not _has_array(f)]   # a coefficient leads, as it reads
            shrinking = [f for f in factors if f not in numbers and at_most_one(f, self.values)]
            rest = [atomise(f) for f in factors if f not in numbers and f not in shrinking]
            if rest and any(_is_reciprocal(f) for f in shrinking):
                return numbers + [sp.Mul(*[atomise(f) for f in shrinking], evaluate=False), *rest]
            return numbers + [atomise(f) for f in shrinking] + rest

        def atomise(a):
            if not _has_array(a):
                return a
            special = isinstance(a, sp.Mul) and (any(isinstance(f, OnGrid) for f in a.args)
                                                  or sum(isinstance(f, sp.Piecewise) for f in a.args) == 1)
            if isinstance(a, _ARRAYS) or special or (isinstance(a, sp.Add) and self._fused(a) is not None):
                return slot(a)
            if a is not e and smaller(a):
                coeff, rest = a.as_coeff_Mul()
                return coeff * slot(rest) if coeff != 1 else slot(a)
            if isinstance(a, sp.Mul) and any(smaller(f) for f in a.args):
                small = [f for f in a.args if smaller(f)]
                num = sp.Mul(*[f for f in small if not _is_reciprocal(f)])
                den = sp.Mul(*[sp.Pow(f.base, -f.exp) for f in small if _is_reciprocal(f)])
                factors = ordered([f for f in a.args if f not in small])
                for group, power in ((num, 1), (den, -1)):
                    if group == 1:
                        continue
                    # Together where the group is still smaller than the map (b_i c_j is not: each alone).
                    parts = [slot(group)] if smaller(group) else [slot(f) for f in sp.Mul.make_args(group)]
                    factors += [p if power == 1 else sp.Pow(p, -1, evaluate=False) for p in parts]
                return sp.Mul(*factors, evaluate=False)
            if isinstance(a, sp.Mul):
                return sp.Mul(*ordered(a.args), evaluate=False)
            if isinstance(a, (sp.Add, sp.Pow, sp.Function)):
                return a.func(*[atomise(x) for x in a.args], evaluate=False)
            raise PrintError(f"{index_text(a)} cannot be computed elementwise")

        return Map(atomise(e), tuple(args))

    def condition(self, c, target):
        """A condition (comparisons of arrays, and/or/not) as a boolean array."""
        args = []

        def walk(c):
            if isinstance(c, sp.logic.boolalg.ITE):
                a, b, d = c.args
                return walk(sp.Or(sp.And(a, b), sp.And(sp.Not(a), d)))
            if isinstance(c, (sp.And, sp.Or)):
                return c.func(*[walk(a) for a in c.args], evaluate=False)
            if isinstance(c, sp.Not):
                return sp.Not(walk(c.args[0]), evaluate=False)
            if isinstance(c, sp.core.relational.Relational):
                sides = []
                for a in c.args:
                    if _has_array(a):
                        slot = Slot(f"_{len(args)}")
                        args.append((slot, self.operand(a, target)))
                        sides.append(slot)
                    else:
                        sides.append(a)
                return c.func(*sides, evaluate=False)
            raise PrintError(f"the condition {c} is not a comparison of arrays")

        return Map(walk(c), tuple(args))

    def piecewise(self, e):
        target = self.layout_of(e)
        if e.args[-1].cond != sp.true:
            raise PrintError("a Piecewise without an 'otherwise' branch")
        if not any(_has_array(c) for _, c in e.args):
            # Conditions on hyper-parameters alone (alpha > 1/2): one branch is taken for the whole array.
            args = []

            def slot(v):
                if not _has_array(v):   # a number: an array of the select's shape when it has axes
                    op = Filled(self.expr(v), self._shape(target), self.like) if target else \
                        Typed(self.expr(v), self.like)
                elif set(self.layout_of(v)) != set(target):
                    # A branch over fewer axes than the select (c_j where the other reads v_s): the branch taken
                    # is the whole result, so it is broadcast to the select's shape.
                    op = Full(self.operand(v, target), self._shape(target))
                else:
                    op = self.operand(v, target)
                args.append((Slot(f"_{len(args)}"), op))
                return args[-1][0]

            return Map(sp.Piecewise(*[(slot(v), c) for v, c in e.args]), tuple(args))
        select = recognise.threshold_select(e)
        if select is not None:   # v where x > c, else 0
            v, x, c = select
            return Masked(self.operand(v, target), self.operand(x, target), Number(c))
        op = self.operand(e.args[-1].expr, target)
        # No array element: a Python number, or a scalar argument that may be one (dL = 1.0).
        scalar = not e.args[-1].expr.has(sp.Indexed)
        for value, cond in reversed(e.args[:-1]):
            branch = self.operand(value, target)
            if scalar and not value.has(sp.Indexed):
                # A select of two Python numbers has the default dtype: give one the arrays' dtype.
                branch = Typed(branch, self.like)
            op = Where(self.condition(cond, target), branch, op)
            scalar = False
        return op

    def masked(self, e, grids):
        """[e ∈ 0..n−1] · t: t where the mask holds, else 0, so an inf or nan of t off the grid never shows."""
        rest = sp.Mul(*[a for a in e.args if not isinstance(a, OnGrid)])
        target = self.layout_of(e)
        mask = [self.expand(g, self.on_grid(g), target) for g in grids]
        slots = [Slot(f"_{n}") for n in range(len(mask))]
        cond = Map(sp.And(*slots, evaluate=False) if len(slots) > 1 else slots[0], tuple(zip(slots, mask)))
        value = self.operand(rest, target) if rest.has(sp.Indexed) else Typed(self.expr(rest), self.like)
        return Where(cond, value, Number(sp.S.Zero))

    def extremum(self, e):
        which = "maximum" if isinstance(e, sp.Max) else "minimum"
        target = self.layout_of(e)
        found = recognise.clamp(e)
        if found is not None:
            u, low, high = found
            return Clamp(self.operand(u, target), *(None if b is None else Number(b) for b in (low, high)))
        consts = [a for a in e.args if not _has_array(a)]
        arrays = [a for a in e.args if a not in consts]
        op = self.operand(arrays[0], target)
        for a in arrays[1:] + ([sp.Max(*consts) if which == "maximum" else sp.Min(*consts)] if consts else []):
            op = Extremum(which, op, self.operand(a, target))
        return op

    def delta(self, e):
        i, j = e.args
        target = self.layout_of(e)
        # The indices the sides read outside their index arrays (p in δ(q, y_p + p) too): each a mesh axis.
        bare = set().union(*[a.xreplace({r: sp.Dummy() for r in a.atoms(sp.Indexed)}).atoms(sp.Idx)
                             for a in map(sp.sympify, (i, j))])
        if not (isinstance(i, sp.Idx) and isinstance(j, sp.Idx)) and all(k in target for k in bare):
            # δ(q, y_p): 1 where the index array holds q; δ(0, p) (a parameter read at p[0, j]), δ(p, q + 1):
            # 1 where the index expressions agree, over a mesh of the free indices.
            mesh = Mesh(self._shape(target), self.like)
            slots = {}

            def slot(key, op):
                return slots.setdefault(key, (Slot(f"_{len(slots)}"), op))[0]

            def side(a):
                a = sp.sympify(a)
                new = {r: slot(r, self.operand(r, target)) for r in a.atoms(sp.Indexed)}   # index arrays read (y_p)
                new.update({k: slot(k, Item(mesh, target.index(k))) for k in a.atoms(sp.Idx) & bare})
                return a.xreplace(new)

            cond = sp.Eq(side(i), side(j), evaluate=False)
            return Where(Map(cond, tuple(slots.values())), Typed(Number(sp.S.One), self.like), Number(sp.S.Zero))
        if not (isinstance(i, sp.Idx) and isinstance(j, sp.Idx)):
            raise PrintError(f"{index_text(e)}: a delta of index expressions that no scatter routes")
        if i.upper != j.upper:
            raise PrintError(f"a Kronecker delta between indices of different ranges ({i}, {j})")
        return Identity(extent(i), self.like)

    # -- reads -----------------------------------------------------------------------
    def view(self, e, base=None):
        """A read at index expressions as a strided view: (the view, its axes).

        An index that runs backwards on an axis where another runs forwards (``X[h − i]``) is read
        reversed, ``i → n − 1 − i``, and the view flipped back along it.
        """
        spec = []
        for ix in e.indices:
            a = affine(ix)
            if a is None:
                raise PrintError(f"{index_text(e)}: {index_text(ix)} is not an integer combination of indices")
            if any(not (c.is_positive or c.is_negative or c.is_zero) for _, c in a.coeffs):
                raise PrintError(f"{index_text(e)}: the sign of a coefficient in {index_text(ix)} is unknown")
            spec.append(a)
        axes = list(dict.fromkeys(m for a in spec for m, _ in a.coeffs))
        mixed = [a for a in spec if len({c.is_positive for _, c in a.coeffs if not c.is_zero}) > 1]
        turned = [m for m in axes if any(a.coeff(m).is_negative for a in mixed)]
        consts = [a.const + sum((a.coeff(m) * (extent(m) - 1) for m in turned), sp.S.Zero) for a in spec]

        def coeff(a, m):
            return -a.coeff(m) if m in turned else a.coeff(m)

        for a in spec:
            if len({coeff(a, m).is_positive for m, c in a.coeffs if not c.is_zero}) > 1:
                raise PrintError(f"{index_text(e)}: an index expression runs both ways in its indices")
        # The view's axes in the order the surrounding code lays them out: no transpose after.
        place = {m: n for n, m in enumerate(self._layout)}
        axes.sort(key=lambda m: place.get(m, len(place)))
        grid = tuple((tuple(coeff(a, m) for m in axes), const, a.denom) for a, const in zip(spec, consts))
        op = GridView(base or Name(str(e.base.label)), grid, self._shape(axes), self._fill)
        if turned:
            op = Flip(op, tuple(axes.index(m) for m in turned))
        return op, tuple(axes)

    def indexed(self, e, base=None):
        if gathers(e):
            return self.gather(e, base)
        if shifted(e):
            op, natural = self.view(e, base)
        else:
            op, natural = base or Name(str(e.base.label)), tuple(e.indices)
            if any(not isinstance(i, sp.Idx) for i in natural):
                op = Take(op, tuple(None if isinstance(i, sp.Idx) else Number(i) for i in natural))
                natural = tuple(i for i in natural if isinstance(i, sp.Idx))
        if len(set(natural)) != len(natural):
            letters = self._letters(natural)
            sub = "".join(letters[i] for i in natural)
            out = "".join(letters[i] for i in self.layout_of(e))
            return Einsum(f"{sub}->{out}", (op,), False)
        perm = tuple(natural.index(i) for i in self.layout_of(e))
        return op if perm == tuple(range(len(perm))) else Permute(op, perm)

    # -- gathers --------------------------------------------------------------------------
    def gather(self, e, base=None):
        """A read through index arrays (``X[s, y[s]]``, ``E[t[s], j]``) as one advanced indexing (``Take``).

        Axes indexed by an index array, an integer, or an index a gather also reads are indexed by arrays that
        broadcast together (a plain index by its position, ``Mesh``); every other axis after the last gathered
        one is taken whole. The result's axes: the broadcast ones in the current layout's order, then the whole.
        """
        target = self.layout_of(e)
        axes = tuple(e.indices)
        inner = set().union(*[free_indices(i) for i in axes if gathered(i)])
        last = max(n for n, i in enumerate(axes) if gathered(i))
        shape = e.base.shape
        # An axis is taken whole only where its index covers it (j over D − 1 reads part of it: by position).
        whole = [n for n, i in enumerate(axes)
                 if n > last and isinstance(i, sp.Idx) and i not in inner and axes.count(i) == 1
                 and (shape is None or sp.expand(extent(i) - shape[n]) == 0)]
        spread = tuple(i for i in target if any(i in free_indices(a) for n, a in enumerate(axes) if n not in whole))
        outer, self._layout = self._layout, spread
        try:
            mesh = Mesh(self._shape(spread), self.like)
            index = []
            for n, i in enumerate(axes):
                if n in whole:
                    index.append(None)
                elif isinstance(i, sp.Idx):
                    index.append(Item(mesh, spread.index(i)))
                elif gathered(i):
                    index.append(self.expand(i, self.expr(i), spread))
                else:
                    index.append(Number(i))
        finally:
            self._layout = outer
        natural = spread + tuple(axes[n] for n in whole)
        op = Take(base or Name(str(e.base.label)), tuple(index))
        perm = tuple(natural.index(i) for i in target)
        return op if perm == tuple(range(len(perm))) else Permute(op, perm)

    def gather_scatter(self, route, target, bound):
        """``Σ_B w · Π δ(k, y[…])`` over ``target``: w added at the positions the index arrays hold (``ScatterAdd``)."""
        routed = dict(route.positions)
        # Laid out as the weight's largest tensor is stored (no transposing copy of dY).
        source = natural_order(route.weight, tuple(i for i in target if i not in routed) + tuple(bound) + route.bound)
        self._layout = source
        shape = self._shape(source)
        values = self.expr(route.weight)
        covered = set(self.layout_of(route.weight)) | set(target) - set(routed)
        covered |= set().union(*[free_indices(g) for g in routed.values()])
        if not covered >= set(source):   # every (free, summed) position adds once: the values over all of them
            values = Full(self.expand(route.weight, values, source), shape) if _has_array(route.weight) \
                else Filled(values, shape, self.like)
        elif _has_array(route.weight):
            values = self.expand(route.weight, values, source)
        else:
            values = Typed(values, self.like)
        mesh = Mesh(shape, self.like)
        index = tuple(self.expand(routed[t], self.expr(routed[t]), source) if t in routed
                      else Item(mesh, source.index(t)) for t in target)
        return ScatterAdd(self._shape(target), index, values)

    # -- windows, arg-max, grid masks ----------------------------------------------------
    def window(self, body):
        """``body`` as the candidates of a max, and the layout it is in: a read that falls off its
        tensor (padding) makes the candidate −∞, so padding never wins."""
        reads = [r for r in body.atoms(sp.Indexed) if shifted(r)]
        if not reads:
            return self.expr(body), self.layout_of(body)
        if isinstance(body, sp.Indexed):   # the read itself: padded with −∞
            fill, self._fill = self._fill, MinusInfinity()
            try:
                return self.expr(body), self.layout_of(body)
            finally:
                self._fill = fill
        target = self._layout
        # Any other body: where each read lands on its tensor (a view of ones, zero off the grid), else −∞.
        slots, masks = [], []
        for r in sorted(reads, key=str):
            ones = self.indexed(r, OnesLike(Name(str(r.base.label))))
            slots.append(Slot(f"_{len(slots)}"))
            masks.append(self.expand(r, ones, target))
        cond = Map(sp.And(*[s > 0 for s in slots], evaluate=False) if len(slots) > 1 else slots[0] > 0,
                   tuple(zip(slots, masks)))
        return Where(cond, self.expand(body, self.expr(body), target), MinusInfinity()), target

    def max_over(self, e):
        body, over = e.body, e.over
        outer = self._layout
        self._layout = self._reduction_layout(body, self.layout_of(e), over)
        try:
            pool = recognise.pooling(body, over) if not isinstance(e, MaxWithZeros) else None
            if pool is not None and len(over) <= 3:
                op = MaxPool(self._arranged(pool.x, pool.x_axes), *self._pool_numbers(pool),
                             self._numbers(extent(o) for o in pool.lead[2:]))
                return self._to_target(op, pool.lead, self.layout_of(e))
            if isinstance(e, MaxWithZeros):
                op, have = self.expr(body), self.layout_of(body)
            else:
                op, have = self.window(body)
            axes = tuple(have.index(k) for k in over)
            if isinstance(op, GridView) and axes == tuple(range(len(have) - len(over), len(have))):
                return WindowReduce("max", op, len(over))
            return Reduce("max", op, axes, len(have))
        finally:
            self._layout = outer

    def at_max(self, e):
        """``v`` at the first arg-max of ``f`` over the window: a gather (a scatter is ``scatter``)."""
        target, outer = self.layout_of(e), self._layout
        full = target + tuple(e.over)
        shape = self._shape(full)
        self._layout = full
        try:
            window, have = self.window(e.body)
            if have != full:
                window = Full(self.expand(e.body, window, full), shape)
            value = self.expr(e.value)
            if self.layout_of(e.value) != full:
                value = Full(self.expand(e.value, value, full), shape) if e.value.has(sp.Indexed) \
                    else Filled(value, shape, self._like(e.body))
        finally:
            self._layout = outer
        return AtMaxGather(value, window, len(e.over))

    def on_grid(self, e):
        """``[e ∈ {0..n−1}]`` as a mask of the index arrays (a bracket no read absorbed)."""
        expr, n = e.args
        layout = self.layout_of(e)
        mesh = Mesh(self._shape(layout), self.like)
        slots = {m: Slot(f"_{k}") for k, m in enumerate(layout)}
        a = affine(expr)   # (Σ c m + d)/q: the numerator and denominator as integers (together() may keep ½(m − 1))
        num, den = (sum((c * m for m, c in a.coeffs), a.const), a.denom) if a is not None \
            else sp.fraction(sp.together(expr))
        num = num.xreplace(slots)
        tests = [sp.Ge(num, 0, evaluate=False), sp.Le(num, (n - 1) * den, evaluate=False)]
        if den != 1:
            tests.append(sp.Eq(sp.Mod(num, den, evaluate=False), 0, evaluate=False))
        return Map(sp.And(*tests, evaluate=False), tuple((slots[m], Item(mesh, k)) for k, m in enumerate(layout)))

    # -- scatter to the arg-max -----------------------------------------------------------
    def _pool_numbers(self, pool) -> tuple:
        return (self._numbers(pool.stride), self._numbers(pool.dilation), self._numbers(pool.offset),
                self._numbers(extent(k) for k in pool.window))

    def _pool_scatter(self, st, found):
        """A scatter that is max pooling's gradient: one route, to the positions the window read reaches,
        of a weight over the pool's output (n, c, o…); else None."""
        pool = recognise.pooling(found.body, found.over)
        if pool is None or len(found.routes) != 1 or len(found.over) > 3:
            return None
        (routed, weight), = found.routes
        x = pool.x
        if len(st.indices) != len(x.indices) or found.layout != pool.lead or any(
                sp.simplify(routed.get(t, t) - e) != 0 for t, e in zip(st.indices, x.indices)):
            return None
        layout = tuple(st.indices[a] for a in pool.x_axes)   # the gradient in x's axis order (n, c, spatial…)
        self._layout = found.layout
        values = self.expand(weight, self.expr(weight), found.layout)
        if not weight.has(sp.Indexed):   # a number, or a loss's scalar upstream dL: one per window
            values = Filled(values, self._shape(found.layout), self._like(st.rhs))
        saved = self.arg_maxima.get(window_key(found.body, found.over))
        op = MaxPoolScatter(self._arranged(x, pool.x_axes), values, *self._pool_numbers(pool),
                            Name(saved) if saved else None)
        self._layout = st.indices
        return [Assign(st.name, self._to_target(op, layout, st.indices))]

    def scatter(self, st, found):
        """``dX[t…] = Σ_B A · AtMax(Π_k δ(e_k, t_k), F, K)``: route A to the positions e_k at the arg-max of F.

        One addition per route (the deltas that differ) of its summed weight: the adjoint of the window read
        (``GridScatter``) where the positions are integer combinations of the indices, else a ``ScatterAdd``.
        """
        outer = self._layout
        try:
            pooled = self._pool_scatter(st, found)
        finally:
            self._layout = outer
        if pooled is not None:
            return pooled
        layout, over = found.layout, found.over
        adds = []
        target = self._shape(st.indices)
        try:
            self._layout = layout + over
            window, have = self.window(found.body)
            if have != layout + over:
                window = Full(self.expand(found.body, window, layout + over), self._shape(layout + over))
            self._fill = None
            at, best = Name(self._local("at")), Name(self._local("best"))
            mesh = {i: Slot(f"_at{n}") for n, i in enumerate(layout)}
            mesh.update({k: Slot(f"_best{n}") for n, k in enumerate(over)})
            items = {s: Item(at, n) for n, s in enumerate(mesh[i] for i in layout)}
            items.update({mesh[k]: Item(best, n) for n, k in enumerate(over)})
            meshed = False
            for routed, weight in found.routes:
                self._layout = layout
                values = self.expand(weight, self.expr(weight), layout)
                if not weight.has(sp.Indexed):   # a number, or a loss's scalar dL: one per position, arrays' dtype
                    values = Filled(values, self._shape(layout), self._like(st.rhs))
                self._layout = ()
                grid = recognise.affine_route(st.indices, routed, layout + over)
                if grid is not None:   # the positions a window read reaches: its adjoint
                    adds.append(GridScatter(target, grid, self._shape(layout), self._shape(over), best, values))
                    continue
                meshed = True
                positions = []
                for t in st.indices:
                    if t in routed:
                        e = routed[t].xreplace(mesh)
                        positions.append(Map(e, tuple((s, items[s]) for s in sorted(e.atoms(Slot), key=str))))
                    else:
                        positions.append(Item(at, layout.index(t)))
                adds.append(ScatterAdd(target, tuple(positions), values))
        finally:
            self._layout, self._fill = outer, None
        total = adds[0]
        if len(adds) > 1:
            slots = [Slot(f"_{n}") for n in range(len(adds))]
            total = Map(sp.Add(*slots, evaluate=False), tuple(zip(slots, adds)))
        return ([Assign(at.name, Mesh(self._shape(layout), self._like(st.rhs)))] if meshed else []) + [
            Assign(best.name, ArgMax(window, len(over))),
            Assign(st.name, total),
        ]

    def _local(self, name: str) -> str:
        """``name``, or name_2, name_3, …: the first the kernel does not use."""
        n, k = name, 1
        while n in self.taken:
            k += 1
            n = f"{name}_{k}"
        return n

    # -- reductions --------------------------------------------------------------------
    def _letters(self, indices):
        """einsum subscripts: the index names themselves when they are distinct single letters."""
        order = list(dict.fromkeys(list(self._layout) + list(indices)))
        names = [str(i.label) for i in order]
        if all(len(n) == 1 and n in string.ascii_letters for n in names):
            return dict(zip(order, names))
        return {i: string.ascii_lowercase[n] for n, i in enumerate(order)}

    def _reduction_layout(self, body, target, bound):
        """Axes for a reduced body: the natural order of its largest tensor, so no transpose is needed."""
        tensors = sorted(body.atoms(sp.Indexed), key=lambda t: (-len(t.indices), str(t)))
        lead = [i for i in (tensors[0].indices if tensors else ()) if i in target or i in bound]
        rest = [i for i in target + bound if i not in lead]
        layout = tuple(dict.fromkeys(lead + rest))
        kept = tuple(i for i in layout if i not in bound)
        return layout if kept == target else target + bound

    def sum(self, e):
        bound = tuple(lim[0] for lim in e.limits)
        outer = self._layout
        target = self.layout_of(e)
        try:
            conv = self.convolution(e, target)
            if conv is not None:
                return conv
            route = recognise.gather_route(e.function, bound)
            if route is not None:
                return self.gather_scatter(route, target, bound)
            factors = sp.Mul.make_args(e.function)
            # Those at most one in magnitude first: einsum multiplies its operands in order (Σ_s f C dY at the
            # largest C is finite; C dY is not).
            reads = shrinking_first([f for f in factors if isinstance(f, sp.Indexed)], self.values)
            # A power of a plain read is an operand of its own, computed first: a square, or a reciprocal known to
            # be at most one (a reciprocal first may overflow where the quotient does not).
            powers = [f for f in factors if isinstance(f, sp.Pow) and isinstance(f.base, sp.Indexed)
                      and f.exp.is_Integer and not shifted(f.base)
                      and (f.exp > 0 or at_most_one(f, self.values))]
            bases = reads + [f.base for f in powers]
            same = len({frozenset(t.indices) for t in bases}) == 1 and not any(shifted(t) for t in bases)
            plain = all(isinstance(i, sp.Idx) for t in bases if not shifted(t) for i in t.indices)
            if len(bases) == len(factors) >= 2 and plain and (self.caps.einsum_products or not same):
                self._layout = target + bound
                return self.contract(e, reads + powers, target)
            self._layout = self._reduction_layout(e.function, target, bound)
            body = self.expr(e.function)
            have = self.layout_of(e.function)
            axes = tuple(have.index(k) for k in bound if k in have)
            if len(axes) < len(bound):  # a bound index the body does not carry: Σ_k c = K c
                count = sp.Mul(*[extent(k) for k in bound if k not in have])
                slot = Slot("_0")
                body = Map(count * slot, ((slot, body),))
                if not axes:
                    return body
            return Reduce("sum", body, axes, len(have))
        finally:
            self._layout = outer

    def contract(self, e, reads, target):
        """Σ of a product of tensors: a matrix product (GEMM or GEMV), else einsum with our own subscripts."""
        c = recognise.contraction(e, target) if all(isinstance(t, sp.Indexed) for t in reads) else None
        if c is not None:
            return MatMul(*self._factors(c), c.kind)
        tensors = [(self._power(t), tuple(t.base.indices)) if isinstance(t, sp.Pow) else self.view(t)
                   if shifted(t) else (Name(str(t.base.label)), tuple(t.indices)) for t in reads]
        letters = self._letters(tuple(i for _, ind in tensors for i in ind))
        subs = ",".join("".join(letters[i] for i in ind) for _, ind in tensors)
        out = "".join(letters[i] for i in target)
        # A contraction of strided windows (reads at index expressions over many axes) needs a BLAS path; a
        # product of plain arrays summed is one pass of einsum's own loop (3x faster than its BLAS path there).
        big = any(isinstance(t, sp.Indexed) and shifted(t) and len(ind) > 3 for t, (_, ind) in zip(reads, tensors))
        return Einsum(f"{subs}->{out}", tuple(op for op, _ in tensors), big)

    def _power(self, t):
        """A power of a plain read (``1/Z_si``) as an array in the read's own axis order."""
        outer = self._layout
        try:
            self._layout = tuple(t.base.indices)
            return self.expr(t)
        finally:
            self._layout = outer

    def _factors(self, c) -> tuple:
        """The two operands of a matrix product (``recognise.Contraction``), each in its own layout."""
        outer = self._layout
        try:
            self._layout = c.left_layout
            left = self.expr(c.left)
            self._layout = c.right_layout
            return left, self.expr(c.right)
        finally:
            self._layout = outer

    def _fused(self, e):
        """c + A B as one operation (``fused_add_matmul``), or a bias added to a convolution; else None."""
        target = self.layout_of(e)
        if len(e.args) != 2:
            return None
        sums = [a for a in e.args if isinstance(a, sp.Sum)]
        if len(sums) != 1:
            return self._multiply_add(e, target)
        other = next(a for a in e.args if a is not sums[0])
        if not other.has(sp.Indexed):
            return None
        conv = recognise.correlation(sums[0], target)
        if conv is not None and not conv.transposed and not self._output_window(conv) \
                and self.layout_of(other) == (conv.channel_out,):
            outer, self._layout = self._layout, (conv.channel_out,)
            try:
                bias = self.expr(other)
            finally:
                self._layout = outer
            return self._correlate(conv, target, bias)
        c = recognise.contraction(sums[0], target)
        if not self.caps.fused_add_matmul or len(target) != 2 or c is None or c.kind != "gemm" \
                or self._needs_expand(other, target):
            return None
        return AddMatMul(self.expr(other), *self._factors(c))

    def _multiply_add(self, e, target):
        """c + v·a·b as one operation where the backend fuses it and the statement is not built in place; else None."""
        found = recognise.multiply_add(e) if self.caps.fused_multiply_add and not self.steps_in_place else None
        if found is None:
            return None
        c, a, b, v = found
        if target not in (self.layout_of(a), self.layout_of(b)):
            return None
        return AddMul(self.operand(c, target), self.operand(a, target), self.operand(b, target), Number(v))

    # -- convolutions -------------------------------------------------------------------
    @staticmethod
    def _arranged(t, axes):
        name = Name(str(t.base.label))
        return name if tuple(axes) == tuple(range(len(axes))) else Permute(name, tuple(axes))

    @staticmethod
    def _numbers(values) -> tuple:
        return tuple(Number(v) for v in values)

    def _to_target(self, op, layout, target):
        perm = tuple(layout.index(i) for i in target)
        return op if perm == tuple(range(len(perm))) else Permute(op, perm)

    def _output_window(self, c) -> bool:
        """True when a correlation's window runs over derived extents: the sum is then over a convolution's
        output positions, a weight gradient (the same bilinear form with the roles of window and output swapped)."""
        return any(extent(k).free_symbols & self.derived for k in c.window)

    def convolution(self, e, target):
        """A Sum that is a convolution's forward, input gradient or weight gradient, else None."""
        c = recognise.correlation(e, target)
        w = recognise.correlation_weight(e, target)
        if w is not None and (c is None or self._output_window(c)):
            op = CorrelateWeight(self._arranged(w.x, w.x_axes), self._arranged(w.dy, w.dy_axes),
                                 self._numbers(w.stride), self._numbers(w.dilation), self._numbers(w.offset),
                                 self._numbers(extent(k) for k in w.window))
            return self._to_target(op, w.layout, target)
        if c is None or len(c.spatial) > 3:
            return None
        return self._correlate(c, target, None)

    def _correlate(self, c, target, bias):
        layout = (c.batch, c.channel_out, *c.spatial)
        out = self._numbers(extent(o) for o in c.spatial)
        if c.transposed:
            # Σ_k' y[(u + p − δk')/σ] W[k']: the weight as it is stored, channels (in of y, out).
            w = self._arranged(c.w, (c.w_axes[1], c.w_axes[0], *c.w_axes[2:]))
            op = CorrelateTransposed(self._arranged(c.x, c.x_axes), w, self._numbers(c.denom),
                                     self._numbers(c.dilation), self._numbers(c.transposed_padding()), out)
        else:
            w = self._arranged(c.w, c.w_axes)
            flips = tuple(2 + a for a, flip in enumerate(c.w_flip) if flip)
            op = Correlate(self._arranged(c.x, c.x_axes), Flip(w, flips) if flips else w, bias,
                           self._numbers(c.stride), self._numbers(c.dilation), self._numbers(c.offset),
                           self._numbers(c.denom), out)
        return self._to_target(op, layout, target)


# -- kernels ------------------------------------------------------------------------------

@dataclass
class LoweredStatement:
    statement: object          # the ir.Statement
    instructions: list
    guard: str | None          # the keyword flag that skips it (``need_dX``), or None


@dataclass
class LoweredKernel:
    """A kernel as instructions: bind sizes and check hyper-parameters, the statements, add into ``into``."""

    kernel: object             # the ir.Kernel
    prologue: list
    statements: list
    epilogue: list


def lower_kernel(kernel, caps, module: str = "", forward=None) -> LoweredKernel:
    """Every statement of ``kernel`` lowered for a backend with capabilities ``caps``; ``forward``, the kernel
    whose results it reads (what each holds orders the factors of a product, ``magnitudes``)."""
    backward = kernel.differentiates
    arrays = [a for a in kernel.given() if a.dims and not a.index and a.of is None]
    deferrable = recognise.deferrable(kernel.statements, kernel.results) if backward else ()
    taken = {a.name for a in kernel.arguments} | {s.name for s in kernel.statements} | {
        s.name for s in kernel.scalars} | {str(d) for d, _ in kernel.dims()} | {str(d) for d in kernel.extents}
    taken |= {u.name for u in kernel.upstreams}
    low = Lowering(caps, arrays[0].name if arrays else None, deferrable, kernel.extents, backward, kernel.arg_maxima,
                   taken)
    if forward is not None and forward is not kernel:
        saved = inlined(forward.statements)
        low.values.update({a.name: saved[a.name] for a in kernel.arguments if a.name in saved})
    statements = []
    for st in kernel.statements:
        with stage(module or kernel.name, "print", f"{kernel.name}: {index_text(st.lhs)} = {index_text(st.rhs)}"):
            statements.append(LoweredStatement(st, low.statement(st), kernel.optional.get(st.serves)))
    used = set().union(*[symbols(i) for s in statements for i in s.instructions])
    # Upstreams the caller may omit are zero arrays of their output's shape, made from the sizes the others give.
    zeros = [ZeroUpstream(u.name, low.like, u.dims) for u in kernel.upstreams] if kernel.omissible else []
    zeros += [ZeroUpstream(a.name, low.like, a.dims) for a in kernel.arguments if a.name in kernel.zero_arguments]
    used |= {x for z in zeros for d in z.shape for x in sp.sympify(d).free_symbols}
    given = [(a.name, a.dims) for a in kernel.given()]
    plain, solved, checked = extents.axis_sizes(given, {s.symbol for s in kernel.scalars}, set(kernel.extents))
    sizes = _axis_sizes(kernel, solved, checked, used, taken)
    prologue = _checks(kernel, used)   # before the shapes: an extent adds the sizes its formula reads
    prologue[_after_integers(prologue):_after_integers(prologue)] = sizes[0]
    prologue += sizes[1]
    prologue += _labels(kernel, used)
    if arrays:  # every kernel computes in its arrays' promoted floating dtype
        prologue.insert(0, Promote(tuple(a.name for a in arrays)))
    prologue = _shapes(kernel, plain, used, sizes[0]) + zeros + prologue
    epilogue = [Accumulate(tuple(kernel.results))] if backward else []
    return LoweredKernel(kernel, prologue, statements, epilogue)


def _checks(kernel, used: set) -> list:
    """Integer hyper-parameters, then derived output extents: computed from the arguments' shapes, or
    checked against the upstream's. Adds to ``used`` the sizes those read."""
    carried = {d for d, _ in kernel.dims()}
    out = []
    # Integer hyper-parameters first: a stride of 0 would divide by zero below.
    for s in kernel.scalars:
        if s.symbol.is_integer and (s.symbol in used or any(
                s.symbol in f.free_symbols for f in kernel.extents.values())):
            out.append(CheckInteger(kernel.name, s.name, 1 if s.symbol.is_positive else 0))
    for dim, formula in kernel.extents.items():
        if dim not in used and dim not in carried:
            continue
        used |= {dim} | formula.free_symbols   # an upstream's extent is always checked, used or not
        out.append(Extent(kernel.name, str(dim), formula, f"{dim} = {index_text(formula)}", dim in carried))
    return out


def _after_integers(prologue) -> int:
    return sum(isinstance(i, CheckInteger) for i in prologue)


def _axis_sizes(kernel, solved: dict, checked: list, used: set, taken: set) -> tuple:
    """Axes sized by dimension expressions: (dimensions solved from their axis, then the other axes
    checked and the kernel's own expression extents checked to be at least 1). Adds to ``used`` what they read."""
    solves, checks = [], []
    for dim, (array, axis, formula) in solved.items():
        name = _fresh_size(f"{array}_size{axis}", taken)
        solves.append(AxisSize(kernel.name, formula, array, axis, name, dim))
        used |= formula.free_symbols - {dim}
    for array, axis, formula in checked:
        checks.append(AxisSize(kernel.name, formula, array, axis))
        used |= formula.free_symbols
    made = {a for arr in kernel.given() for a in arr.dims}
    inner = set()
    for st in kernel.statements:
        inner |= {extent(i) for i in st.rhs.atoms(sp.Idx) | set(getattr(st.lhs, "indices", ()))}
    for e in sorted(inner - made, key=sp.default_sort_key):
        if not (isinstance(e, sp.Symbol) or e.is_Integer) and not e.free_symbols & set(kernel.extents):
            checks.append(AxisSize(kernel.name, e))
            used |= e.free_symbols
    return solves, checks


def _fresh_size(name: str, taken: set) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _shapes(kernel, plain: dict, used: set, solves: list) -> list:
    """Sizes the instructions read, bound from the first array carrying each; then the size of each axis
    a dimension is solved from."""
    by_array = {}
    for dim, (array, axis) in plain.items():
        if dim in used:
            by_array.setdefault(array, []).append((axis, dim))
    for ins in solves:
        by_array.setdefault(ins.array, []).append((ins.axis, ins.size))
    ranks = {a.name: len(a.dims) for a in kernel.given()}
    out = []
    for array, pairs in by_array.items():
        pairs.sort(key=lambda p: p[0])
        whole = [axis for axis, _ in pairs] == list(range(ranks[array]))
        out.append(Shapes(tuple(str(d) for _, d in pairs), array, None if whole else tuple(a for a, _ in pairs)))
    return out


def _labels(kernel, used: set) -> list:
    """Each index array the kernel reads (labels, token ids), brought to integer indices and checked in range;
    adds to ``used`` the extents those checks read."""
    carried = {d for d, _ in kernel.dims()}
    out = []
    for a in kernel.arguments:
        if a.of is not None and sp.sympify(a.of).free_symbols <= carried:
            used |= sp.sympify(a.of).free_symbols
            out.append(CheckLabels(kernel.name, a.name, sp.sympify(a.of)))
    return out
