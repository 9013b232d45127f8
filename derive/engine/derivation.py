"""From a forward pass to its gradients, every rule application recorded once.

For each differentiable tensor ``X`` the vector–Jacobian product with the
upstream gradient ``dY`` is formed in index notation,

    dX_pq = Σ_{s,n} dY_sn ∂Y_sn/∂X_pq        (a scalar output L: dX_pq = ∂L/∂X_pq)

and with several outputs (an LSTM cell's h and c) the sum of the products with
each one's upstream, ``dX = Σ dh ∂h/∂X + Σ dc ∂c/∂X``;

and taken through the stages below, each applied once and recorded as a
``Step`` under its own name when it changes the expression:

1. the chain rule through the named intermediates (shown with ∂ and d);
2. differentiate: SymPy's partial derivatives (Kronecker deltas appear), the
   Jacobians of the intermediates substituted;
3. sift the Kronecker deltas (sums split linearly, constants pulled out);
4. fold the forward's definitions back in (``Σ_s X_sq = S μ_q``);
5. the module's assumptions (``Σ_k T_sk = 1``);
6. write in the forward's saved quantities, then in its outputs;
7. simplify the elementwise expression; collect into a compact form.

The Jacobians of the intermediates are shown beside the steps as lemmas, each
sifted and folded on its own. A rewrite that runs out of budget keeps the form
it had and the derivation says so (``Gradient.notes``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from . import budget
from .checks import check_derivative, check_forward
from .differentiate import Differentiator, Fresh, Partial, Total, depends_on, index_names
from .errors import DeriveError, require_finite, stage
from .grids import absorb, orient
from .ir import Sum, element
from .normal_forms import clean_piecewise
from .rewrite import apply_assumptions, compact, fold, reexpress, reexpress_intermediates, simplify_elementwise
from .sifting import sift

# Free indices of a gradient, in order of preference.
GRADIENT_INDEX_NAMES = "pqruvwxyz"


@dataclass(frozen=True)
class Step:
    """One stage of a derivation: ``lhs = rhs`` with the rule that produced it."""

    reason: str
    lhs: sp.Expr
    rhs: sp.Expr


@dataclass
class Gradient:
    """The derived gradient of the output with respect to one tensor."""

    tensor: object            # notation.Tensor
    base: sp.IndexedBase      # dX
    indices: tuple            # free indices p, q
    expr: sp.Expr             # closed form, in index notation
    steps: list = field(default_factory=list)
    # Budgets that ran out on the way: "simplify the elementwise expression: skipped: ..."
    notes: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.base.label)

    @property
    def lhs(self):
        return element(self.base, self.indices)


@dataclass
class Derivation:
    forward: object
    # One per output, in order: dY (dh, dc); none for a single scalar loss (its kernel scales by dL) or a Jacobian.
    upstreams: list
    gradients: list
    # Jacobians of intermediates, per gradient name: [(lhs, definition, value)].
    lemmas: dict = field(default_factory=dict)
    # The gradients of the shared lets (``shared_lets``), in the order they are computed: the last let's first.
    # The gradients above, and earlier lets', read them.
    adjoints: list = field(default_factory=list)

    @property
    def upstream(self):
        """The one upstream gradient of a single-output layer (None for a loss, a Jacobian, several outputs)."""
        return self.upstreams[0] if len(self.upstreams) == 1 else None


def _free_indices(forward, tensor):
    taken = set().union(*[index_names(d.expr) | {str(i.label) for i in d.indices} for d in forward.definitions])
    # Nor a letter a hyper-parameter is written as (the padding p).
    taken |= set(forward.scalars) | set(forward.latex.values())
    letters = forward.gradient_indices or GRADIENT_INDEX_NAMES
    names = [n for n in letters if n not in taken]
    k = 1
    while len(names) < len(tensor.dims):   # every letter taken (a second-order forward): p1, q1, …
        names += [f"{n}{k}" for n in letters if f"{n}{k}" not in taken]
        k += 1
    return tuple(sp.Idx(n, dim) for n, dim in zip(names, tensor.dims))


def derive(forward) -> Derivation:
    if not forward.definitions:
        raise DeriveError(forward.name, "check", "the forward", "defines no output")
    with stage(forward.name, "check", "the forward"):
        check_forward(forward)
    upstreams = upstream_bases(forward)
    shared = [] if forward.jacobian else shared_lets(forward)
    opaque = {d.tensor.name for d in shared}
    # A shared output's own upstream enters its gradient (below), not the others' as a sink of its own.
    sinks = [(o, u) for o, u in zip(forward.outputs, upstreams or [None]) if o.tensor.name not in opaque]
    adjoints, gradients, lemmas = [], [], {}
    # Reverse mode through the shared lets: each one's gradient once, from the outputs and the shared lets after
    # it (those already derived), then every tensor's from the outputs and all of them.
    own = dict(zip([o.tensor.name for o in forward.outputs], upstreams or [None] * len(forward.outputs)))
    for d in reversed(shared):
        computed = [(m, g.base) for m, g in zip(reversed(shared), adjoints)]
        g, steps_of_lemmas = _derive_one(forward, d.tensor, sinks + computed, opaque, own.get(d.tensor.name))
        check_derivative(forward, g)
        adjoints.append(g)
        lemmas[g.name] = steps_of_lemmas
    sinks += [(m, g.base) for m, g in zip(reversed(shared), adjoints)]
    for t in forward.differentiable:
        g, steps_of_lemmas = _derive_one(forward, t, sinks, opaque)
        check_derivative(forward, g)
        gradients.append(g)
        lemmas[g.name] = steps_of_lemmas
    return Derivation(forward, upstreams, gradients, lemmas, adjoints)


def shared_lets(forward) -> list:
    """The lets on the paths of two or more differentiable tensors (an LSTM's gate pre-activations, a linear map
    before its activation), and the outputs a later output reads that are: each gets a gradient of its own,
    computed once, which every tensor behind it reads (``dX = Σ_r dz_sr W_rq``), instead of each tensor's gradient
    chaining through its Jacobian again. An output's gradient is its upstream plus what the later ones add
    (``d<Y>_total``)."""
    read = {str(b.label) for d in forward.definitions for b in d.expr.atoms(sp.IndexedBase)}
    shared = [d for d in forward.intermediates
              if (d.tensor.role == "intermediate" or d.tensor.name in read and not forward.scalar_output)
              and not _exponential_sum(d.expr)
              and sum(depends_on(forward, d.tensor.name, t.base) for t in forward.differentiable) >= 2]
    # A gradient of its own pays only where two or more gradients read it. An LSTM's forget gate f is read by
    # the cell alone, so df would be read by dA alone: chained through instead, dA_f = dcell c0 σ′(A_f) stays
    # one product (df = dcell c0 on its own overflows at the largest cell state, though dA_f is finite).
    while True:
        names = {d.tensor.name for d in shared}
        behind = [d.tensor for d in shared] + list(forward.differentiable)
        kept = [d for d in shared if sum(m.name != d.tensor.name and depends_on(
            forward, d.tensor.name, m.base, names) for m in behind) >= 2]
        if len(kept) == len(shared):
            return shared
        shared = kept


def _exponential_sum(expr) -> bool:
    """A sum of exponentials (a softmax's normaliser Z = Σ e^A): the kernels keep it shifted by its maximum, and
    that shift must meet the e^A it scales in one expression (e^{A − m}/Z'). A gradient of its own would hold
    e^{−m} apart from e^A, which overflows: such a let is chained through instead."""
    return any(s.function.has(sp.exp) for s in expr.atoms(sp.Sum))


def upstream_bases(forward) -> list:
    """``d<output>`` for each output; none for one scalar output (a loss) or a Jacobian. With several outputs a
    scalar one's upstream is a scalar too (its bare base)."""
    if forward.scalar_output or forward.jacobian:
        return []
    return [sp.IndexedBase(forward.upstream_name(o.tensor.name), shape=o.tensor.dims or None, real=True)
            for o in forward.outputs]


# The rules after sifting, in order: (reason, stage, rule(expr, forward, tensor)).
RULES = (
    ("a read off the grid or in the padding is zero", "sift", lambda e, f, t: absorb(e)),
    ("run each window index forward (a flipped kernel)", "rewrite", lambda e, f, t: orient(e)),
    ("fold the forward's definitions back in", "rewrite", lambda e, f, t: fold(e, f)),
    ("use the module's assumptions", "rewrite", lambda e, f, t: apply_assumptions(e, f)),
    ("write in the forward's saved quantities", "rewrite", lambda e, f, t: reexpress(e, f, t.base)),
    ("write in the forward's outputs", "rewrite", lambda e, f, t: reexpress_intermediates(e, f)),
    ("simplify the elementwise expression", "rewrite", lambda e, f, t: simplify_elementwise(e, f)),
    ("collect into a compact form", "rewrite", lambda e, f, t: compact(e, f)),
)


def _derive_one(forward, t, sinks, opaque=frozenset(), upstream=None):
    """The gradient of ``t`` (a differentiable tensor, or a shared let) from ``sinks``: the definitions whose
    upstream gradient is known (each output with its upstream, each shared let after ``t`` with its gradient),
    chaining through every other let; the shared lets (``opaque``) are held fixed, their paths counted once
    through their own gradients. ``upstream``: t's own, when t is an output (its gradient starts from it)."""
    out = forward.out
    free = _free_indices(forward, t)
    wrt = element(t.base, free)
    if forward.jacobian:  # ∂Y_ij/∂X_mn: all of the output's indices stay free
        grad = sp.IndexedBase(f"d{out.tensor.name}_d{t.name}", shape=out.tensor.dims + t.dims, real=True)
        lhs = grad[out.indices + free]
    else:
        grad = sp.IndexedBase(forward.gradient_name(t.name), shape=t.dims, real=True)
        lhs = element(grad, free)
    # Each sink with its upstream (none: a single loss, or the Jacobian) that reaches t other than through a
    # shared let (whose own gradient counts that path).
    outputs = [(o, u) for o, u in sinks if depends_on(forward, o.tensor.name, t.base, opaque)] or sinks[:1]

    def vjp(o, upstream, inner):
        if upstream is None:
            return inner
        if not o.indices:
            return upstream * inner
        return Sum(upstream[o.indices] * inner, *[(i, i.lower, i.upper) for i in o.indices])

    def each(inner):
        """Σ over the outputs of the product of its upstream with ``inner(output)``."""
        return sum((vjp(o, u, inner(o)) for o, u in outputs), sp.S.Zero)

    name = forward.name
    taken = index_names(sp.Tuple(*[d.expr for d in forward.definitions])) | {str(i.label) for i in free}
    taken |= {str(i.label) for d in forward.definitions for i in d.indices}
    diff = Differentiator(forward, wrt, Fresh(taken), opaque=frozenset(opaque) - {t.name})
    steps = []
    budget.collect()

    def record(reason, expr):
        # Building a sum folds the Piecewise in its body into one (PReLU's Σ dY (p₁ + p₂)): its impossible
        # branches and redundant bounds are pruned before the step is shown or used.
        expr = clean_piecewise(expr)
        if not steps or steps[-1].rhs != expr:
            steps.append(Step(reason, lhs, expr))
        return expr

    direct = sp.S.Zero if upstream is None else element(upstream, free)
    if not forward.jacobian:
        record("vector-Jacobian product", direct + each(lambda o: Total(o.lhs, wrt)))

    def chain(o):
        def link(d):
            term = Partial(o.lhs, d.lhs) * Total(d.lhs, wrt)
            bound = [i for i in d.indices if i not in o.indices]
            return Sum(term, *[(i, i.lower, i.upper) for i in bound]) if bound else term
        return Partial(o.lhs, wrt) + sum((link(d) for d in diff.chained(o.expr)), sp.S.Zero)

    if any(diff.chained(o.expr) for o, _ in outputs):
        record("chain rule through the intermediates", direct + each(chain))

    ys = ",".join(o.tensor.name for o, _ in outputs)
    with stage(name, "differentiate", f"{forward.gradient_name(t.name)} = d{ys}/d{t.name}"):
        expr = require_finite(name, "differentiate", lhs, record("differentiate", direct + each(lambda o: diff.total(o.expr))))
    with stage(name, "sift", expr):
        expr = require_finite(name, "sift", lhs, record("sift the Kronecker deltas", sift(expr)))
    for reason, stage_name, rule in RULES:
        with stage(name, stage_name, expr):
            new = require_finite(name, stage_name, lhs, rule(expr, forward, t))
        expr = record(reason, new)
    notes = [f"{what}: {why}" for what, why in budget.collect()]

    lemmas = []
    for total, body_, value in diff.lemmas:
        with stage(name, "sift", total):
            shown = compact(apply_assumptions(fold(sift(value), forward), forward))
        if shown != 0:  # an intermediate that does not depend on wrt says nothing worth reading
            lemmas.append((total, body_, shown))
    budget.collect()
    indices = out.indices + free if forward.jacobian else free
    return Gradient(t, grad, indices, expr, steps, notes), lemmas
