"""Random forwards for the fuzzer: a Hypothesis strategy that draws one small AST per forward.

The AST is plain data (lists, strings, numbers: it goes to JSON in a reproducer). The same AST
gives the forward's source in the notation of docs/forward-notation.md (``source`` here) and an
independent PyTorch implementation (tests/fuzzing/reference.py), so a derived forward is checked
against ``torch.autograd`` through a module the engine never saw.

Nodes::

    ["num", p, q]                 the rational p/q
    ["scalar", name]              a float hyper-parameter (forward.scalar), > 0
    ["dim", name]                 the size of a dimension, > 0
    ["read", tensor, [axis, ...]] a tensor or intermediate read; an axis is [[coef, [factor, ...]], ...],
                                  the sum of coef × the product of its factors (indices, dimensions,
                                  integer hyper-parameters): stride*t + i - pad is
                                  [[1, ["stride", "t"]], [1, ["i"]], [-1, ["pad"]]]
    ["fn", name, a]               an elementwise function of UNARY
    ["add"|"sub"|"mul"|"div"|"max2"|"min2", a, b]
    ["maxc", c, a]                max(c, a) with c a number (slope of the constant at the tie)
    ["clamp", a, lo, hi]          min(hi, max(lo, a)), lo < hi numbers
    ["pw", cond, c, a, b]         a where cond > c, else b
    ["sum", a, [index, ...]]      Σ over the indices
    ["wmax", a, [index, ...]]     max over a window (forward's Max): off-tensor reads are no candidate

A forward (``spec``) is a dict: name, dims, output_dims, integers {name: default}, scalars {name: default},
indices {name: range} (a range is a dimension, an output dimension, an integer hyper-parameter's name or
an int), tensors [{name, role, dims, positive, padding}], lets [{name, indices, expr, positive}] and
output {indices, expr}. Sizes stay small and expressions shallow so that each forward derives in seconds.
"""
from __future__ import annotations

import math

from hypothesis import assume, strategies as st

# name: (SymPy template, the argument must be positive). The PyTorch side is in reference.UNARY.
UNARY = {
    "exp": ("sp.exp({})", False),
    "tanh": ("sp.tanh({})", False),
    "sigmoid": ("1 / (1 + sp.exp(-({})))", False),
    "erf": ("sp.erf({})", False),
    "erfc": ("sp.erfc({})", False),
    "softplus": ("sp.log(1 + sp.exp({}))", False),
    "atan": ("sp.atan({})", False),
    "sin": ("sp.sin({})", False),
    "cosh": ("sp.cosh({})", False),
    "abs": ("sp.Abs({})", False),
    "relu": ("sp.Max(0, {})", False),
    "negrelu": ("sp.Min(0, {})", False),
    "sign": ("sp.sign({})", False),
    "square": ("({}) ** 2", False),
    "cube": ("({}) ** 3", False),
    "log": ("sp.log({})", True),
    "sqrt": ("sp.sqrt({})", True),
    "recip": ("1 / ({})", True),
    "rsqrt": ("({}) ** sp.Rational(-1, 2)", True),
    "pow32": ("({}) ** sp.Rational(3, 2)", True),
}
ANY_ARG = sorted(n for n, (_, pos) in UNARY.items() if not pos)
POSITIVE_ARG = sorted(n for n, (_, pos) in UNARY.items() if pos)
# Functions whose value is > 0 for any argument (a positive expression may be one of these).
POSITIVE_VALUE = ["exp", "sigmoid", "softplus", "cosh", "erfc"]
NUMBERS = [(1, 1), (2, 1), (3, 1), (1, 2), (3, 2), (-1, 1), (-1, 2), (1, 3)]
POSITIVE_NUMBERS = [(1, 1), (2, 1), (1, 2), (3, 2), (1, 3)]
SCALARS = {"alpha": [0.5, 1.5, 2.0], "beta": [0.25, 0.75, 3.0]}


def term(coef, *factors):
    return [coef, list(factors)]


def plain(index):
    return [term(1, index)]


class _Builder:
    """The state of one draw: which tensors, scalars and integers the expressions have used."""

    def __init__(self, draw, family):
        self.draw, self.family = draw, family
        self.tensors = {}   # name -> {name, role, dims, positive, padding}
        self.scalars = {}
        self.integers = {}
        self.lets = []

    # -- leaves ----------------------------------------------------------------------------------
    def tensor(self, name, role, dims, positive=False, padding=None):
        if name not in self.tensors:
            self.tensors[name] = {"name": name, "role": role, "dims": list(dims), "positive": positive,
                                  "padding": padding}
        return name

    def scalar(self):
        name = self.draw(st.sampled_from(sorted(SCALARS)))
        if name not in self.scalars:
            self.scalars[name] = self.draw(st.sampled_from(SCALARS[name]))
        return ["scalar", name]

    def number(self, positive=False):
        p, q = self.draw(st.sampled_from(POSITIVE_NUMBERS if positive else NUMBERS))
        return ["num", p, q]

    # -- expressions -----------------------------------------------------------------------------
    def expr(self, leaves, depth, positive_leaves=(), reducers=()):
        """An expression over ``leaves`` (callables giving a leaf node). ``reducers``: callables
        (depth -> node) giving a reduction over a fresh index (a row sum, a log-sum-exp)."""
        if depth <= 0:
            return self.draw(st.sampled_from(leaves))()
        kind = self.draw(st.sampled_from(
            ["leaf", "leaf", "fn", "fn", "fn", "posfn", "add", "sub", "mul", "mul", "div", "max2", "min2",
             "maxc", "clamp", "pw", "num"] + (["reduce", "reduce"] if reducers else [])))
        sub = lambda d=depth - 1: self.expr(leaves, d, positive_leaves, reducers)
        pos = lambda d=depth - 1: self.positive(leaves, d, positive_leaves, reducers)
        if kind == "leaf":
            return self.draw(st.sampled_from(leaves))()
        if kind == "num":
            return ["mul", self.number(), sub()]
        if kind == "fn":
            return ["fn", self.draw(st.sampled_from(ANY_ARG)), sub()]
        if kind == "posfn":
            return ["fn", self.draw(st.sampled_from(POSITIVE_ARG)), pos()]
        if kind in ("add", "sub", "mul", "max2", "min2"):
            return [kind, sub(), sub()]
        if kind == "div":
            return ["div", sub(), pos()]
        if kind == "maxc":
            return ["maxc", self.number(), sub()]
        if kind == "clamp":
            lo, hi = sorted(self.draw(st.lists(st.sampled_from(NUMBERS), min_size=2, max_size=2, unique=True)),
                            key=lambda r: r[0] / r[1])
            return ["clamp", sub(), ["num", *lo], ["num", *hi]]
        if kind == "pw":
            return ["pw", sub(), ["num", 0, 1] if self.draw(st.booleans()) else self.number(), sub(), sub()]
        return self.draw(st.sampled_from(reducers))(depth - 1)

    def positive(self, leaves, depth, positive_leaves=(), reducers=()):
        """An expression > 0 everywhere (an argument of log or sqrt, a divisor)."""
        choices = ["const", "scalar", "square", "posfn", "posfn"]
        if positive_leaves:
            choices += ["leaf", "leaf"]
        if depth > 0:
            choices += ["sum", "prod", "sqrt"]
        kind = self.draw(st.sampled_from(choices))
        sub = lambda: self.expr(leaves, max(depth - 1, 0), positive_leaves, reducers)
        pos = lambda: self.positive(leaves, depth - 1, positive_leaves, reducers)
        if kind == "const":
            return ["add", self.number(positive=True), ["fn", "square", sub()]]
        if kind == "scalar":
            return ["add", self.scalar(), ["fn", "abs", sub()]]
        if kind == "square":
            return ["add", ["num", 1, 1], ["fn", "square", sub()]]
        if kind == "posfn":
            return ["fn", self.draw(st.sampled_from(POSITIVE_VALUE)), sub()]
        if kind == "leaf":
            return self.draw(st.sampled_from(positive_leaves))()
        if kind == "sum":
            return ["add", pos(), pos()]
        if kind == "prod":
            return ["mul", pos(), pos()]
        return ["fn", "sqrt", pos()]


# -- the feature family: rows s over S, features j, k over D, outputs o over O ---------------------

def _feature(b: _Builder, depth):
    draw = b.draw
    spec = {"dims": ["S", "D"], "output_dims": [], "indices": {"s": "S", "j": "D", "k": "D"}}

    def leaves_at(row, col, extra=()):
        X = lambda: ["read", b.tensor("X", "input", ["S", "D"]), [plain(row), plain(col)]]
        out = [X, X, X,
               lambda: ["read", b.tensor("Z", "input", ["S", "D"]), [plain(row), plain(col)]],
               lambda: ["read", b.tensor("Q", "const", ["S", "D"]), [plain(row), plain(col)]],
               lambda: ["read", b.tensor("g", "param", ["D"]), [plain(col)]],
               lambda: ["read", b.tensor("c", "param", ["D"]), [plain(col)]],
               lambda: ["read", b.tensor("v", "param", ["S"]), [plain(row)]],
               b.scalar, b.number,
               # shifted and reversed reads: off the tensor reads zero
               lambda: ["read", b.tensor("X", "input", ["S", "D"]), [plain(row), [term(1, col), term(1)]]],
               lambda: ["read", b.tensor("X", "input", ["S", "D"]), [plain(row), [term(1, col), term(-1)]]],
               lambda: ["read", b.tensor("X", "input", ["S", "D"]),
                        [plain(row), [term(1, "D"), term(-1), term(-1, col)]]]]
        return out + list(extra)

    def positive_at(row, col):
        return [lambda: ["read", b.tensor("P", "input", ["S", "D"], positive=True), [plain(row), plain(col)]],
                lambda: ["dim", "D"]]

    def row_reducer(row, extra=()):
        def reduce(d):
            inner = b.expr(leaves_at(row, "k", extra), d, positive_at(row, "k"))
            return ["sum", inner, ["k"]] if draw(st.booleans()) else ["div", ["sum", inner, ["k"]], ["dim", "D"]]
        return reduce

    def lse_reducer(row):
        def reduce(d):
            inner = b.expr(leaves_at(row, "k"), d, positive_at(row, "k"))
            return ["fn", "log", ["sum", ["fn", "exp", inner], ["k"]]]
        return reduce

    # Intermediates (forward.let): a row statistic r[s], an elementwise h[s, j], a scalar m.
    let_leaves_rc, let_leaves_r, let_pos = [], [], []
    for n in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["row", "row_pos", "elem", "scalar"]))
        name = f"h{n}"
        ex_rc = tuple(let_leaves_rc) + tuple(let_leaves_r)
        if kind == "row":
            e = ["sum", b.expr(leaves_at("s", "k", tuple(let_leaves_r)), depth - 1, positive_at("s", "k")), ["k"]]
            b.lets.append({"name": name, "indices": ["s"], "expr": e, "positive": False})
            let_leaves_r.append(lambda name=name: ["read", name, [plain("s")]])
        elif kind == "row_pos":
            e = ["sum", b.positive(leaves_at("s", "k"), depth - 1, positive_at("s", "k")), ["k"]]
            positive = draw(st.booleans())
            b.lets.append({"name": name, "indices": ["s"], "expr": e, "positive": positive})
            let_pos.append(lambda name=name: ["read", name, [plain("s")]])
        elif kind == "elem":
            e = b.expr(leaves_at("s", "j", ex_rc), depth - 1, positive_at("s", "j"),
                       [row_reducer("s")])
            b.lets.append({"name": name, "indices": ["s", "j"], "expr": e, "positive": False})
            let_leaves_rc.append(lambda name=name: ["read", name, [plain("s"), plain("j")]])
        else:
            e = ["div", ["sum", b.expr(leaves_at("s", "j"), depth - 1, positive_at("s", "j")), ["s", "j"]],
                 ["dim", "S"]]
            b.lets.append({"name": name, "indices": [], "expr": e, "positive": False})
            let_leaves_r.append(lambda name=name: ["read", name, []])

    extra = tuple(let_leaves_rc) + tuple(let_leaves_r)
    pos_sj = positive_at("s", "j") + let_pos
    body = lambda d=depth: b.expr(leaves_at("s", "j", extra), d, pos_sj,
                                  [row_reducer("s", tuple(let_leaves_r)), lse_reducer("s")])
    shape = draw(st.sampled_from(["sj", "sj", "js", "s", "loss", "linear", "mix"]))
    if shape == "sj":
        out = {"indices": ["s", "j"], "expr": body()}
    elif shape == "js":  # an index permutation: the output transposed
        out = {"indices": ["j", "s"], "expr": body()}
    elif shape == "s":
        out = {"indices": ["s"], "expr": ["sum", body(), ["j"]]}
    elif shape == "loss":
        out = {"indices": [], "expr": ["div", ["sum", body(), ["s", "j"]], ["dim", "S"]]}
    elif shape == "linear":  # Y_so = Σ_j e_sj W_oj (+ b_o)
        spec["dims"].append("O")
        spec["indices"]["o"] = "O"
        w = ["read", b.tensor("W", "param", ["O", "D"]), [plain("o"), plain("j")]]
        e = ["sum", ["mul", body(depth - 1), w], ["j"]]
        if draw(st.booleans()):
            e = ["add", e, ["read", b.tensor("bo", "param", ["O"]), [plain("o")]]]
        if draw(st.booleans()):
            e = ["fn", draw(st.sampled_from(ANY_ARG)), e]
        out = {"indices": ["s", "o"], "expr": e}
    else:  # Y_sj = Σ_k e_sk A_kj or A_jk: a square matrix read either way round
        a = ["read", b.tensor("A", "param", ["D", "D"]),
             [plain("k"), plain("j")] if draw(st.booleans()) else [plain("j"), plain("k")]]
        inner = b.expr(leaves_at("s", "k"), depth - 1, positive_at("s", "k"))
        e = ["sum", ["mul", inner, a], ["k"]]
        if draw(st.booleans()):
            e = b.expr([lambda: e] + leaves_at("s", "j"), 1, pos_sj)
        out = {"indices": draw(st.sampled_from([["s", "j"], ["j", "s"]])), "expr": e}
    spec["output"] = out
    return spec


# -- the signal family: X[S, C, L] read at stride*t + dil*i - pad, windows, convolutions, pools -------

def _signal(b: _Builder, depth):
    """1-D (X[S, C, L], output Lo) or 2-D (X[S, C, H, W], output Ho × Wo) windows."""
    draw = b.draw
    two = draw(st.integers(0, 2)) == 0
    space = ["Hi", "Wi"] if two else ["L"]
    out_dims = ["Ho", "Wo"] if two else ["Lo"]
    pos = ["h", "w"] if two else ["t"]     # output positions
    win = ["i", "j"] if two else ["i"]     # window offsets, one per spatial axis
    spec = {"dims": ["S", "C", *space], "output_dims": list(out_dims),
            "indices": {"s": "S", "c": "C", **dict(zip(pos, out_dims))}}
    kind = draw(st.sampled_from(["conv", "maxpool", "maxpool", "avgpool", "stencil"]))

    # The window: over a dimension K (a kernel's width) or an integer (a pool's window).
    if kind in ("conv", "stencil"):
        spec["dims"].append("K")
        spec["indices"].update({w: "K" for w in win})
    elif draw(st.booleans()):
        b.integers["win"] = draw(st.integers(1, 3))
        spec["indices"].update({w: "win" for w in win})
    else:
        spec["indices"].update({w: draw(st.integers(1, 3)) for w in win})
    stride = draw(st.sampled_from([1, 2, "stride"]))
    if stride == "stride":
        b.integers["stride"] = draw(st.integers(1, 2))
    dil = draw(st.sampled_from([1, 1, 2]))
    pad = draw(st.sampled_from([0, 0, 1, "pad"]))
    if pad == "pad":
        b.integers["pad"] = draw(st.integers(0, 2))

    def axis(p, w):
        a = [term(1, stride, p) if isinstance(stride, str) else term(stride, p), term(dil, w)]
        if pad == "pad":
            a.append(term(-1, "pad"))
        elif pad:
            a.append(term(-pad))
        return a

    padding = None
    if pad and draw(st.booleans()):  # declared padding widens the output; undeclared, reads still give 0
        padding = [0, 0] + [pad] * len(space)
    X = lambda: b.tensor("X", "input", ["S", "C", *space], padding=padding)
    read = lambda: ["read", X(), [plain("s"), plain("c")] + [axis(p, w) for p, w in zip(pos, win)]]
    g = lambda: ["read", b.tensor("g", "param", ["C"]), [plain("c")]]
    inner_leaves = [read, read, read, g, b.scalar, b.number]
    inner = b.expr(inner_leaves, draw(st.integers(0, max(depth - 1, 0)))) if draw(st.booleans()) else read()
    if "X" not in repr(inner):  # the window must read the signal, or no read determines the output extent
        inner = ["mul", inner, read()]

    if kind == "conv":
        spec["dims"].append("O")
        spec["indices"]["o"] = "O"
        w = ["read", b.tensor("W", "param", ["O", "C", *["K"] * len(win)]), [plain("o"), plain("c")] + [plain(x) for x in win]]
        e = ["sum", ["mul", inner, w], ["c", *win]]
        if draw(st.booleans()):
            e = ["add", e, ["read", b.tensor("bo", "param", ["O"]), [plain("o")]]]
        out_idx = ["s", "o", *pos]
    elif kind == "stencil":
        w = ["read", b.tensor("u", "param", ["K"] * len(win)), [plain(x) for x in win]]
        e = ["sum", ["mul", inner, w], list(win)]
        out_idx = ["s", "c", *pos]
    elif kind == "maxpool":
        e = ["wmax", inner, list(win)]
        out_idx = ["s", "c", *pos]
    else:
        e = ["sum", inner, list(win)]
        out_idx = ["s", "c", *pos]

    if draw(st.booleans()):  # the pooled/convolved value kept as an intermediate, then read
        b.lets.append({"name": "P", "indices": out_idx, "expr": e, "positive": False})
        e = ["read", "P", [plain(x) for x in out_idx]]
    if draw(st.booleans()):  # something elementwise around it
        outer = [lambda: e, lambda: e, b.scalar, b.number]
        if "c" in out_idx:
            outer.append(lambda: ["read", b.tensor("gc", "param", ["C"]), [plain("c")]])
        wrapped = b.expr(outer, draw(st.integers(1, max(depth - 1, 1))))
        # Keep the window in the output: no other read determines the output's extent.
        e = wrapped if repr(e)[1:-1] in repr(wrapped) else ["add", wrapped, e]
    shape = draw(st.sampled_from(["same", "same", "perm", "loss"]))
    if shape == "perm":  # channels last
        spec["output"] = {"indices": [out_idx[0], *out_idx[2:], out_idx[1]], "expr": e}
    elif shape == "loss":
        spec["output"] = {"indices": [], "expr": ["sum", e, out_idx]}
    else:
        spec["output"] = {"indices": out_idx, "expr": e}
    return spec


def _upsample(b: _Builder, depth):
    """Reads between grid points: Y_sct = e(X[s, c, t/f]) (zero-inserting upsampling), or a transposed
    convolution Σ_i X[s, c, (t − i)/f] w_i, over a declared extent Lo = f·L."""
    draw = b.draw
    f = draw(st.sampled_from([2, 3]))
    spec = {"dims": ["S", "C", "L"], "output_dims": ["Lo"], "extents": {"Lo": [f, "L"]},
            "indices": {"s": "S", "c": "C", "t": "Lo"}}
    X = lambda: b.tensor("X", "input", ["S", "C", "L"])
    if draw(st.booleans()):
        read = lambda: ["read", X(), [plain("s"), plain("c"), [term([1, f], "t")]]]
        leaves = [read, read, lambda: ["read", b.tensor("g", "param", ["C"]), [plain("c")]], b.scalar, b.number]
        e = b.expr(leaves, draw(st.integers(0, max(depth - 1, 0))))
        if "X" not in repr(e):
            e = ["add", e, read()]
    else:
        spec["dims"].append("K")
        spec["indices"]["i"] = "K"
        read = ["read", X(), [plain("s"), plain("c"), [term([1, f], "t"), term([-1, f], "i")]]]
        e = ["sum", ["mul", read, ["read", b.tensor("u", "param", ["K"]), [plain("i")]]], ["i"]]
        if draw(st.booleans()):
            e = ["fn", draw(st.sampled_from(ANY_ARG)), e]
    shape = draw(st.sampled_from(["same", "perm", "loss"]))
    idx = ["s", "c", "t"]
    spec["output"] = ({"indices": idx, "expr": e} if shape == "same" else
                      {"indices": ["s", "t", "c"], "expr": e} if shape == "perm" else
                      {"indices": [], "expr": ["sum", e, idx]})
    return spec


@st.composite
def forwards(draw, max_depth=3):
    """A random forward: a spec dict (see the module's docstring)."""
    family = draw(st.sampled_from(["feature", "feature", "feature", "signal", "signal", "upsample"]))
    b = _Builder(draw, family)
    depth = draw(st.integers(1, max_depth))
    spec = {"feature": _feature, "signal": _signal, "upsample": _upsample}[family](b, depth)
    spec["lets"] = b.lets
    spec["scalars"] = dict(sorted(b.scalars.items()))
    spec["integers"] = dict(sorted(b.integers.items()))
    spec["tensors"] = [b.tensors[n] for n in sorted(b.tensors)]
    spec["family"] = family
    # Something to differentiate: the output reads a differentiable tensor, directly or through lets.
    assume(_differentiable_reads(spec))
    # Every index of a left-hand side appears on its right (the notation's rule; a draw that drops one
    # is the grammar's, not a forward a user would write).
    for d in spec["lets"] + [spec["output"]]:
        assume(set(d["indices"]) <= free_indices(d["expr"], spec["indices"]))
    # Unused declared indices are harmless but noisy: keep only those an expression names.
    used = _indices_used(spec)
    spec["indices"] = {k: v for k, v in spec["indices"].items() if k in used}
    # Every dimension an index or expression ranges over sizes some argument (else no call could know it).
    sized = {d for t in spec["tensors"] for d in t["dims"]} | set(spec["output_dims"])
    assume({r for r in spec["indices"].values() if isinstance(r, str) and r not in spec["integers"]} <= sized)
    assume(all(n[1] in sized for n in _nodes(spec) if n[0] == "dim"))
    spec["dims"] = [d for d in spec["dims"] if d in sized]
    return spec


def _nodes(spec):
    out = []

    def walk(node):
        if isinstance(node, list) and node and isinstance(node[0], str):
            out.append(node)
            for x in node[1:]:
                walk(x)

    for d in spec["lets"] + [spec["output"]]:
        walk(d["expr"])
    return out


def free_indices(node, declared):
    if not isinstance(node, list) or not node:
        return set()
    if node[0] == "read":
        return {f for ax in node[2] for _, fs in ax for f in fs if f in declared}
    if node[0] in ("sum", "wmax"):
        return free_indices(node[1], declared) - set(node[2])
    return set().union(*(free_indices(x, declared) for x in node[1:]))


def _differentiable_reads(spec):
    wrt = {t["name"] for t in spec["tensors"] if t["role"] in ("input", "param")}
    lets = {let["name"]: let["expr"] for let in spec["lets"]}

    def reads(node):
        if isinstance(node, list) and node:
            if node[0] == "read":
                return node[1] in wrt or (node[1] in lets and reads(lets[node[1]]))
            return any(reads(x) for x in node[1:])
        return False

    return reads(spec["output"]["expr"])


def _indices_used(spec):
    used = set()

    def walk(node):
        if isinstance(node, list):
            if node and node[0] in ("sum", "wmax"):
                used.update(node[2])
            if node and node[0] == "read":
                for ax in node[2]:
                    for _, factors in ax:
                        used.update(f for f in factors if isinstance(f, str))
                return
            for x in node:
                walk(x)

    for let in spec["lets"]:
        used.update(let["indices"])
        walk(let["expr"])
    used.update(spec["output"]["indices"])
    walk(spec["output"]["expr"])
    return used


# -- the forward's source ------------------------------------------------------------------------

def _axis_source(axis):
    q = 1
    for coef, _ in axis:
        if isinstance(coef, list):
            q = q * coef[1] // math.gcd(q, coef[1])
    parts = []
    for coef, factors in axis:
        coef = coef[0] * (q // coef[1]) if isinstance(coef, list) else coef * q
        prod = "*".join(str(f) for f in factors)
        if not prod:
            parts.append(str(coef))
        elif coef == 1:
            parts.append(prod)
        elif coef == -1:
            parts.append(f"-{prod}")
        else:
            parts.append(f"{coef}*{prod}")
    text = " + ".join(parts).replace("+ -", "- ") or "0"
    return text if q == 1 else f"({text})/{q}"


def expr_source(node, scalar_lets=()):
    kind = node[0]
    rec = lambda n: expr_source(n, scalar_lets)
    if kind == "num":
        p, q = node[1], node[2]
        return f"({p})" if q == 1 else f"sp.Rational({p}, {q})"
    if kind in ("scalar", "dim"):
        return node[1]
    if kind == "read":
        if not node[2]:
            return f"{node[1]}.base"
        return f"{node[1]}[{', '.join(_axis_source(a) for a in node[2])}]"
    if kind == "fn":
        return "(" + UNARY[node[1]][0].format(rec(node[2])) + ")"
    if kind in ("add", "sub", "mul", "div"):
        op = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[kind]
        return f"({rec(node[1])} {op} {rec(node[2])})"
    if kind == "max2":
        return f"sp.Max({rec(node[1])}, {rec(node[2])})"
    if kind == "min2":
        return f"sp.Min({rec(node[1])}, {rec(node[2])})"
    if kind == "maxc":
        return f"sp.Max({rec(node[1])}, {rec(node[2])})"
    if kind == "clamp":
        return f"sp.Min({rec(node[3])}, sp.Max({rec(node[2])}, {rec(node[1])}))"
    if kind == "pw":
        return f"sp.Piecewise(({rec(node[3])}, {rec(node[1])} > {rec(node[2])}), ({rec(node[4])}, True))"
    if kind == "sum":
        return f"Sum({rec(node[1])}, {', '.join(node[2])})"
    if kind == "wmax":
        return f"Max({rec(node[1])}, {', '.join(node[2])})"
    raise ValueError(f"unknown node {kind!r}")


def source(spec, name):
    """The forward's Python file, in the notation of docs/forward-notation.md."""
    lines = ['"""A forward drawn by the fuzzer (tests/fuzzing/grammar.py)."""',
             "import sympy as sp", "", "from derive.engine.notation import Forward, Max, Sum", "",
             f'forward = Forward("{name}", __doc__)']
    lines.append(f'{", ".join(spec["dims"])}, = forward.dims("{" ".join(spec["dims"])}")')
    declared = spec.get("extents", {})
    derived = [d for d in spec["output_dims"] if d not in declared]
    if derived:
        lines.append(f'{", ".join(derived)}, = forward.output_dims("{" ".join(derived)}")')
    for d, (factor, of) in declared.items():
        lines.append(f'{d}, = forward.output_dims({d}={factor} * {of})')
    for n, v in spec["integers"].items():
        lines.append(f'{n} = forward.integer("{n}", {v}, minimum={1 if n == "stride" or n == "win" else 0})')
    for n, v in spec["scalars"].items():
        lines.append(f'{n} = forward.scalar("{n}", {v!r})')
    if spec["indices"]:
        names = list(spec["indices"])
        ranges = ", ".join(f"{k}={v}" for k, v in spec["indices"].items())
        lines.append(f"{', '.join(names)}, = forward.indices({ranges})")
    for t in spec["tensors"]:
        args = [f'"{t["name"]}"', *t["dims"]]
        if t["positive"]:
            args.append("positive=True")
        if t["padding"]:
            args.append(f"padding=({', '.join(str(p) for p in t['padding'])},)")
        lines.append(f'{t["name"]} = forward.{ {"input": "input", "param": "param", "const": "const"}[t["role"]] }'
                     f'({", ".join(args)})')
    for let in spec["lets"]:
        idx = "(" + "".join(f"{i}, " for i in let["indices"]) + ")"
        pos = ", positive=True" if let["positive"] else ""
        lines.append(f'{let["name"]} = forward.let("{let["name"]}", {idx}, {expr_source(let["expr"])}{pos})')
    out = spec["output"]
    idx = "(" + "".join(f"{i}, " for i in out["indices"]) + ")"
    lines.append(f'forward.output("Y", {idx}, {expr_source(out["expr"])})')
    return "\n".join(lines) + "\n"
