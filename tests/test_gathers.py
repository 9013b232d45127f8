"""Gathers: reads at an index held in an integer array (``X[s, y[s]]``, ``E[t[s], j]``).

What the checks refuse (one line each), what the derivation makes of the deltas (sifted where a sum runs
over the indexed axis, a scatter-add where it runs over the array's own indices), and the kernels' check
of the labels they are given (one ValueError line). The values against PyTorch are
tests/test_user_forwards.py (ce_int_labels, embedding, embedding_bag, label_gain) and test_kernels.py
(softmax_cross_entropy_labels).
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch

from derive.engine.derivation import derive
from derive.engine.errors import DeriveError
from derive.engine.notation import Forward, Sum
from runtime.kernels.calling import Kernels


def _forward(build):
    f = Forward("g", "a gather")
    S, C, D = f.dims("S C D")
    s, c, j = f.indices(s=S, c=C, j=D)
    X = f.input("X", S, C)
    y = f.index_array("y", S, of=C)
    build(f, X, y, s, c, j)
    return f


REFUSED = {
    "a value": (lambda f, X, y, s, c, j: f.output("Y", (s,), X[s, y[s]] * y[s]), "as a value"),
    "shifted": (lambda f, X, y, s, c, j: f.output("Y", (s,), X[s, y[s] + 1]), "read as it is"),
    "an index expression": (lambda f, X, y, s, c, j: f.output("Y", (s,), X[s, y[s + 1]]), "declared indices"),
    "not an index array": (lambda f, X, y, s, c, j: f.output("Y", (s,), X[s, f.const("T", f.tensors["X"].dims[0])[s]]),
                           "not an index array"),
    "another extent": (lambda f, X, y, s, c, j: f.output("Y", (s, j), f.param("E", *f.dims("V D"))[y[s], j]),
                       "holds values in 0..C - 1"),
    "beside a shift": (lambda f, X, y, s, c, j: f.output("Y", (s,), X[s + 1, y[s]]), "plain indices"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_a_gather_may_not_be_is_refused_in_one_line(case):
    build, words = REFUSED[case]
    with pytest.raises(DeriveError) as e:
        derive(_forward(build))
    message = str(e.value)
    assert message.startswith("g: check: ") and words in message and "\n" not in message, message


def test_a_sum_over_the_indexed_axis_takes_the_label():
    """-Σ_s log P[s, y_s] with P an intermediate: Σ_b ∂L/∂P_ab dP_ab/dX sifts δ(b, y_a) over b; no delta of the
    label is left summed."""
    def build(f, X, y, s, c, j):
        k, = f.indices(k=f.tensors["X"].dims[1])
        P = f.let("P", (s, c), sp.exp(X[s, c]) / Sum(sp.exp(X[s, k]), k))
        f.output("L", (), -Sum(sp.log(P[s, y[s]]), s))
    g, = derive(_forward(build)).gradients
    deltas = g.expr.atoms(sp.KroneckerDelta)
    assert deltas and all(not s.function.has(sp.KroneckerDelta) for s in g.expr.atoms(sp.Sum)), g.expr


def test_an_embedding_gradient_is_a_scatter_add():
    f = Forward("embed", "an embedding")
    S, V, D = f.dims("S V D")
    s, j = f.indices(s=S, j=D)
    t = f.index_array("t", S, of=V)
    E = f.param("E", V, D)
    f.output("Y", (s, j), E[t[s], j])
    g, = derive(f).gradients
    assert str(g.expr) == "Sum(KroneckerDelta(p, t[s])*dY[s, q], (s, 0, S - 1))"


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_labels_out_of_range_or_not_integers_are_one_line(backend):
    k = Kernels("softmax_cross_entropy_labels", backend)
    wrap = (lambda a: a) if backend == "numpy" else torch.as_tensor
    X = wrap(np.zeros((3, 5)))
    for y, words in (([0, 5, 1], "holds 5, outside 0..4"), ([0, -1, 1], "holds -1, outside 0..4"),
                     (np.array([0.0, 1.0, 2.0]), "must hold integers")):
        with pytest.raises(ValueError) as e:
            k.forward({"X": X, "y": wrap(np.asarray(y))})
        assert str(e.value).startswith("softmax_cross_entropy_labels_forward: y ") and words in str(e.value)
        assert "\n" not in str(e.value)
    env = k.forward({"X": X, "y": wrap(np.array([0, 4, 1]))})
    env["y"] = wrap(np.array([0, 9, 1]))
    with pytest.raises(ValueError, match="softmax_cross_entropy_labels_backward: y holds 9, outside 0..4"):
        k.backward(1.0, env)
