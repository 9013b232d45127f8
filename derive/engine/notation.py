"""Index notation: how a module writes its forward pass.

A module file builds one ``Forward``: symbolic dimensions, indices ranging over
them, tensors with roles (input, parameter, constant), and an ordered list of
definitions ``name[indices] = expression``. The definitions made with ``output``
are the module's outputs (one, or several: an LSTM cell's h and c), the others
named intermediates (a mean, a normaliser, ...), which the derivation keeps as
symbols and chains through; a later definition may read an earlier output.

Everything here is plain SymPy: ``Indexed`` elements, ``Sum`` over ``Idx``
indices, elementwise functions and ``Piecewise``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import sympy as sp

from .ir import MaxOver, Sum as _Sum, free_indices


@dataclass(frozen=True)
class Tensor:
    """A named array with symbolic shape and a role in the module."""

    base: sp.IndexedBase
    dims: tuple
    role: str
    # Zero padding per axis, ((lo, hi), ...): how far reads at index expressions may fall outside.
    padding: tuple = ()
    # An index array (role "index"): the extent its integer values index (a gather's labels in 0..C−1).
    of: object = None

    @property
    def name(self) -> str:
        return str(self.base.label)

    def __getitem__(self, idx):
        return self.base[idx]

    def __iter__(self):
        # Without this, __getitem__ makes a Tensor an endless sequence: sp.erf(h) of a scalar let h (instead of
        # h.base) had SymPy read h[0], h[1], … until memory ran out.
        raise TypeError(f"{self.name} is a tensor: read it at indices ({self.name}[s, j]); a let with no indices "
                        f"is {self.name}.base")

    @property
    def differentiable(self) -> bool:
        return self.role in ("input", "param")

    @property
    def positive(self) -> bool:
        return bool(self.base.assumptions0.get("positive"))


@dataclass(frozen=True)
class Definition:
    """``tensor[indices] = expr``: one line of the forward pass."""

    tensor: Tensor
    indices: tuple
    expr: sp.Expr

    @property
    def lhs(self):
        return self.tensor.base[self.indices] if self.indices else self.tensor.base

    def at(self, indices) -> sp.Expr:
        """The right-hand side with the free indices renamed to ``indices``."""
        return self.expr.xreplace(dict(zip(self.indices, indices)))


@dataclass(frozen=True)
class Scalar:
    """A scalar hyper-parameter of the module (eps, alpha), with its default."""

    symbol: sp.Symbol
    default: float

    @property
    def name(self) -> str:
        return self.symbol.name


def exact_binary_fractions(expr):
    """Floats that are small binary fractions (0.5, 0.25, 3.0) as the rationals they equal exactly.

    ``0.5 x · 2`` is then ``x``, not ``1.0 x``; ``0.044715`` stays a float.
    """
    def exact(f):
        r = sp.Rational(float(f))  # the float's exact value
        return r if r.q <= 1024 else f

    return expr.xreplace({f: exact(f) for f in expr.atoms(sp.Float)})


def _engine_sums(expr):
    """A user's ``sympy.Sum`` as the engine's (``ir.Sum``): SymPy rebuilds a sum through its class while it
    differentiates, and its own would fold a nested sum's select out of that sum."""
    return expr.replace(lambda e: type(e) is sp.Sum, lambda e: _Sum(*e.args))


def Sum(expr, *indices):
    """Σ over ``Idx`` indices, each over its own declared range."""
    return _Sum(expr, *[(i, i.lower, i.upper) for i in indices])


def Max(expr, *indices):
    """max over ``Idx`` indices (a pooling window): reads in the padding never win."""
    return MaxOver(expr, *indices)


def _padding(padding, dims):
    """Per axis (lo, hi) from None, or one entry per axis: a number/symbol p (both sides) or a pair."""
    if padding is None:
        return ()
    if len(padding) != len(dims):
        raise ValueError(f"padding has {len(padding)} entries for {len(dims)} axes")
    pairs = [tuple(p) if isinstance(p, (tuple, list)) else (p, p) for p in padding]
    return tuple((sp.sympify(lo), sp.sympify(hi)) for lo, hi in pairs)


def _fresh_lifted(taken: set) -> str:
    """The first of _z1, _z2, … not in ``taken``: a name for an intermediate the engine makes."""
    n = 1
    while f"_z{n}" in taken:
        n += 1
    return f"_z{n}"


@dataclass
class Forward:
    """A module's forward pass in index notation, as data."""

    name: str
    doc: str
    source: str = ""
    tensors: dict = field(default_factory=dict)
    scalars: dict = field(default_factory=dict)
    definitions: list = field(default_factory=list)
    # ``(pattern, replacement)`` pairs the module asserts, e.g. Σ_k T_sk = 1.
    assumptions: list = field(default_factory=list)
    # Extra forward-only kernels (batch norm's eval mode): name -> Forward.
    variants: dict = field(default_factory=dict)
    # How derivations write a name in LaTeX (``Xhat`` → ``\\hat{X}``).
    latex: dict = field(default_factory=dict)
    # Intermediates the forward kernel returns besides those the backward needs.
    returned: list = field(default_factory=list)
    # True: derive the full Jacobian ∂Y_ij/∂X_mn instead of a vector–Jacobian product.
    jacobian: bool = False
    # Names for the free indices of gradients (default p, q, r, ...).
    gradient_indices: str | None = None
    # Output extents the engine derives from the reads (H_out of a convolution): symbol -> extent.
    derived: dict = field(default_factory=dict)
    # Intermediates the engine made itself (``_z1``: a sum inside a select, lifted out of it).
    lifted: set = field(default_factory=set)
    # Names other than d<name> for an output's upstream gradient and a tensor's gradient (a second-order forward:
    # the directions vX of the gradients dX, the products hX).
    upstream_names: dict = field(default_factory=dict)
    gradient_names: dict = field(default_factory=dict)
    # 2: derive the second order too, the kernel <name>_hvp (python -m derive --order 2; registry.SECOND_ORDER).
    order: int = 1
    # A second-order forward: its inputs that are the first order's upstreams (dY; dh, dc), in order.
    upstream_inputs: tuple = ()
    # A second-order forward: its lets that are the first order's gradients of shared lets (dA), linear in those.
    adjoint_lets: tuple = ()

    def upstream_name(self, output: str) -> str:
        return self.upstream_names.get(output, f"d{output}")

    def gradient_name(self, tensor: str) -> str:
        if tensor not in self.gradient_names and any(o.tensor.name == tensor for o in self.outputs):
            # An output's upstream is d<Y>; its whole gradient (a later output reads it) is apart from that.
            return f"{self.upstream_name(tensor)}_total"
        return self.gradient_names.get(tensor, f"d{tensor}")

    def __post_init__(self):
        self.doc = self.doc or ""   # a forward file without a docstring passes __doc__ = None

    # -- declarations -------------------------------------------------
    @staticmethod
    def dims(names: str):
        """Symbolic dimensions, e.g. ``S, M = f.dims('S M')``."""
        out = sp.symbols(names, integer=True, positive=True)
        return out if isinstance(out, tuple) else (out,)

    @staticmethod
    def indices(**ranges):
        """Indices over dimensions, e.g. ``s, m = f.indices(s=S, m=M)``."""
        return tuple(sp.Idx(name, dim) for name, dim in ranges.items())

    def output_dims(self, names: str = "", **declared):
        """Output dimensions: derived from the reads (``output_dims("Ho Wo")``), or declared as an
        expression of dimensions and integer hyper-parameters (``output_dims(Lo=factor * L)``).

        An index over a derived one is read inside an index expression of a declared tensor
        (``X[s, c, σh + i − p, …]``, ``A[s, c, (u − k)/σ]``); its extent is the largest for which the read
        with every other index at its last value stays inside the tensor and its padding. Either way
        the derivation shows the extent, the forward kernel computes it and the backward checks it.
        """
        out = self.dims(names) if names.strip() else ()
        for d in out:
            self.derived[d] = None
        for name, formula in declared.items():
            d, = self.dims(name)
            self.derived[d] = sp.sympify(formula)
            out += (d,)
        return out

    def integer(self, name: str, default: int, minimum: int = 0, latex: str | None = None):
        """An integer hyper-parameter (a stride ≥ 1, a padding ≥ 0, a window size)."""
        if minimum not in (0, 1):
            raise ValueError("an integer hyper-parameter has minimum 0 or 1")
        sym = sp.Symbol(name, integer=True, **({"positive": True} if minimum else {"nonnegative": True}))
        self.scalars[name] = Scalar(sym, int(default))
        if latex:
            self.latex[name] = latex
        return sym

    def scalar(self, name: str, default: float, latex: str | None = None):
        """A scalar hyper-parameter; ``latex`` is how derivations write it."""
        sym = sp.Symbol(name, positive=True)
        self.scalars[name] = Scalar(sym, default)
        if latex:
            self.latex[name] = latex
        return sym

    def _tensor(self, name, dims, role, latex=None, positive=False, padding=None):
        if name in self.tensors:
            raise ValueError(f"{self.name}: tensor {name!r} declared twice")
        if latex:
            self.latex[name] = latex
        dims = tuple(sp.sympify(d) for d in dims)   # a literal extent (p of shape (2, H)) is a SymPy integer
        domain = {"positive": True} if positive else {"real": True}
        t = Tensor(sp.IndexedBase(name, shape=dims or None, **domain), tuple(dims), role, _padding(padding, dims))
        self.tensors[name] = t
        return t

    def input(self, name, *dims, latex=None, positive=False, padding=None):
        """A differentiable input (the layer's X). ``positive``: its entries are > 0.

        ``padding``: one entry per axis, p or (lo, hi): reads may fall that far
        outside the axis and read zero there (a convolution's padding).
        """
        return self._tensor(name, dims, "input", latex, positive, padding)

    def param(self, name, *dims, latex=None, positive=False):
        """A differentiable parameter (W, b, gamma, beta). ``positive``: its entries are > 0."""
        return self._tensor(name, dims, "param", latex, positive)

    def const(self, name, *dims, latex=None, positive=False):
        """A non-differentiable input (targets T, running statistics). ``positive``: its entries are > 0."""
        return self._tensor(name, dims, "const", latex, positive)

    def index_array(self, name, *dims, of, latex=None):
        """An array of integers in 0..of−1 (class labels, token ids), never differentiated; read only as an
        index of another tensor: ``X[s, y[s]]``, ``E[t[s], j]`` (a gather; its gradient is a scatter-add)."""
        if name in self.tensors:
            raise ValueError(f"{self.name}: tensor {name!r} declared twice")
        if latex:
            self.latex[name] = latex
        base = sp.IndexedBase(name, shape=dims or None, integer=True, nonnegative=True)
        t = Tensor(base, tuple(dims), "index", of=sp.sympify(of))
        self.tensors[name] = t
        return t

    def let(self, name, indices, expr, latex=None, returned=False, positive=False):
        """A named intermediate ``name[indices] = expr``; ``returned``: the forward kernel returns it.

        With no indices it is a scalar: use ``tensor.base`` in expressions.
        """
        if returned:
            self.returned.append(name)
        return self._define(name, indices, expr, "intermediate", latex, positive)

    def output(self, name, indices, expr, latex=None, positive=False):
        """An output of the module, after the lets it reads; several outputs are returned (and their upstream
        gradients taken) in the order declared. ``positive``: known > 0 (a norm)."""
        return self._define(name, indices, expr, "output", latex, positive)

    def assume(self, pattern, replacement):
        """A fact about the inputs used in simplification, e.g. Σ_k T_sk = 1."""
        self.assumptions.append((_engine_sums(sp.sympify(pattern)), _engine_sums(sp.sympify(replacement))))

    def variant(self, name: str) -> "Forward":
        """A further forward-only kernel of this module (e.g. eval mode)."""
        v = Forward(f"{self.name}_{name}", self.doc, self.source, scalars=self.scalars, latex=self.latex)
        self.variants[name] = v
        return v

    def _define(self, name, indices, expr, role, latex=None, positive=False):
        indices = tuple(indices)
        dims = tuple(i.upper + 1 for i in indices)
        expr = self._lift_selected_sums(exact_binary_fractions(_engine_sums(sp.sympify(expr))), indices)
        t = self._tensor(name, dims, role, latex, positive)
        self.definitions.append(Definition(t, indices, expr))
        return t

    def _lift_selected_sums(self, expr, order):
        """A sum holding a select (max, |·|, a Piecewise), itself inside a select (``|Σ_j max(0, X_sj) w_j|``),
        becomes an intermediate of the engine's own (``_z1[s]``): SymPy folds a select's condition through the
        sums in it as if their indices were free, and the kernels then read the sum instead of recomputing it."""
        selects = (sp.Max, sp.Min, sp.Abs, sp.sign, sp.Heaviside, sp.Piecewise)

        def lift(e):
            return self._lift(e, order) if isinstance(e, sp.Sum) and e.function.has(*selects) else e

        def inside(e):
            if isinstance(e, selects) and e.has(sp.Sum):
                return e.func(*[a.replace(lambda x: isinstance(x, sp.Sum), lift) for a in e.args])
            return e

        expr = expr.replace(lambda e: isinstance(e, selects) and e.has(sp.Sum), inside) if expr.has(*selects) else expr
        return self._lift_contractions(expr, order)

    def _lift_contractions(self, expr, order):
        """A contraction inside an exponential (a sigmoid or tanh of Σ_k X W written inline) becomes an
        intermediate of the engine's own, as if the user had written the let: its gradient is one array read by
        a matrix product, and the derivative of the function is of an array (1/cosh², e^{−|a|}/(1 + e^{−|a|})²),
        which the numerics write without overflow or cancellation. An exponential sum (Σ e^x) stays inline."""
        growing = (sp.exp, sp.cosh, sp.sinh, sp.tanh)

        def lift(e):
            return self._lift(e, order) if isinstance(e, sp.Sum) and not e.function.has(*growing) else e

        def inside(e):
            return e.func(*[a.replace(lambda x: isinstance(x, sp.Sum), lift) for a in e.args])

        return expr.replace(lambda e: isinstance(e, growing) and e.args[0].has(sp.Sum), inside)

    def _lift(self, e, order):
        """The sum ``e`` as an intermediate of the engine's own (``_z1``), read at its free indices."""
        free = sorted(free_indices(e), key=lambda i: (order.index(i) if i in order else len(order), str(i)))
        # The same sum read at other indices (attention's Σ_d Q_sid K_sjd and, in its normaliser, Σ_d Q_sid K_sld)
        # is the intermediate already made: one array, and one exponent for the shifts to agree on.
        for d in self.definitions:
            if d.tensor.name in self.lifted and len(d.indices) == len(free):
                for at in itertools.permutations(free):
                    if all(a.upper == b.upper for a, b in zip(d.indices, at)) and \
                            d.expr.xreplace(dict(zip(d.indices, at))) == e:
                        return d.tensor.base[at] if at else d.tensor.base
        name = _fresh_lifted(set(self.tensors))
        self.lifted.add(name)
        self.latex[name] = rf"\zeta_{{{name[2:]}}}"
        t = self._define(name, free, e, "intermediate")
        return t[tuple(free)] if free else t.base

    # -- queries --------------------------------------------------------
    @property
    def outputs(self) -> list:
        """The definitions made with ``output``, in the order declared."""
        return [d for d in self.definitions if d.tensor.role == "output"]

    @property
    def out(self) -> Definition:
        """The (first) output; the last definition of a forward that declares none (check refuses it)."""
        outs = self.outputs
        return outs[0] if outs else self.definitions[-1]

    @property
    def intermediates(self) -> list:
        return self.definitions[:-1]

    @property
    def differentiable(self) -> list:
        return [t for t in self.tensors.values() if t.differentiable]

    @property
    def arguments(self) -> list:
        """Tensors the caller passes to the forward kernel, in declaration order."""
        return [t for t in self.tensors.values() if t.role in ("input", "param", "const", "index")]

    @property
    def scalar_output(self) -> bool:
        """One output, a scalar (a loss): its backward takes the scalar ``dL``, default 1."""
        return len(self.outputs) == 1 and not self.out.indices

    def chain(self, name: str, doc: str, second: "Forward", link: str, rename: str) -> "Forward":
        """``second ∘ self``: ``self``'s output, renamed ``rename``, feeds ``second``'s input ``link``.

        Both forwards must name shared dimensions alike. The composite keeps
        every definition of both, so its derivation chains through them.
        """
        if len(self.outputs) != 1:
            raise ValueError(f"{name}: chain feeds one output into the next forward; {self.name} has "
                             f"{len(self.outputs)}")
        f = Forward(name, doc)
        new = sp.IndexedBase(rename, shape=self.out.tensor.base.shape, real=True)
        swap = {self.out.tensor.base: new}
        for t in self.arguments:
            f.tensors[t.name] = t
        for d in self.definitions:
            role = "intermediate" if d is self.out else d.tensor.role
            base = swap.get(d.tensor.base, d.tensor.base)
            t = Tensor(base, d.tensor.dims, role)
            f.tensors[t.name] = t
            f.definitions.append(Definition(t, d.indices, d.expr.xreplace(swap)))
        linked = second.tensors[link].base
        for t in second.arguments:
            if t.name != link:
                f.tensors[t.name] = t
        # Both forwards' own intermediates are _z1, _z2, …: the second's take the next names free.
        lifted, latex, swap = set(self.lifted), {**self.latex, **second.latex}, {linked: new}
        for n in sorted(second.lifted & (set(f.tensors) | lifted)):
            fresh = _fresh_lifted(set(f.tensors) | set(second.tensors) | lifted)
            t = second.tensors[n]
            swap[t.base] = sp.IndexedBase(fresh, shape=t.base.shape, real=True)
            lifted.add(fresh)
            latex[fresh] = rf"\zeta_{{{fresh[2:]}}}"
        for d in second.definitions:
            base = swap.get(d.tensor.base, d.tensor.base)
            t = d.tensor if base is d.tensor.base else Tensor(base, d.tensor.dims, d.tensor.role)
            f.tensors[t.name] = t
            f.definitions.append(Definition(t, d.indices, d.expr.xreplace(swap)))
        f.scalars = {**self.scalars, **second.scalars}
        f.lifted = lifted
        f.latex = latex
        return f
