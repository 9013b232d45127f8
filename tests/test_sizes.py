"""Sizes: extents derived from fractional reads, declared extents, dimension expressions, hyper-parameter axes.

What a kernel does with an array of the wrong size is one ``ValueError`` line naming the kernel, on both
backends; what the notation cannot size is one line at check.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch

from derive.engine import extents
from derive.engine.checks import check_forward
from derive.engine.errors import DeriveError
from derive.engine.notation import Forward, Sum
from runtime.kernels.calling import Kernels
from tests.conftest import BACKENDS, load_user_forward


def _arrays(backend, **shapes):
    rng = np.random.default_rng(0)
    make = (lambda a: a) if backend == "numpy" else torch.as_tensor
    return {n: make(rng.standard_normal(s)) for n, s in shapes.items()}


def test_a_transposed_convolutions_extent_is_pytorchs():
    """A window read backwards, (u − k)/σ, gives σ(L − 1) + K: conv_transpose1d's length without padding."""
    f = Forward("t", "")
    S, C, L, K = f.dims("S C L K")
    U, = f.output_dims("U")
    st = f.integer("stride", 2, minimum=1)
    s, c, u, k = f.indices(s=S, c=C, u=U, k=K)
    A, W = f.input("A", S, C, L), f.param("W", C, K)
    f.output("Y", (s, u), Sum(A[s, c, (u - k) / st] * W[c, k], c, k))
    U_of = extents.solve(f)[U]
    for n, kk, sigma in [(5, 3, 2), (4, 1, 3), (1, 4, 1)]:
        want = torch.nn.functional.conv_transpose1d(torch.ones(1, 1, n), torch.ones(1, 1, kk), stride=sigma).shape[2]
        assert U_of.subs({L: n, K: kk, st: sigma}) == want


def test_upsampling_by_zero_insertion_derives_factor_times_l_minus_one_plus_one():
    f = load_user_forward("upsample_zeros2d")
    Ho = next(d for d in f.derived if str(d) == "Ho")
    H, factor = sp.Symbol("H", integer=True, positive=True), f.scalars["factor"].symbol
    assert sp.simplify(extents.solve(f)[Ho] - (factor * (H - 1) + 1)) == 0


def test_a_declared_extent_of_a_float_scalar_is_refused_in_one_line():
    f = Forward("bad_extent", "")
    S, L = f.dims("S L")
    tau = f.scalar("tau", 2.0)
    Lo, = f.output_dims(Lo=tau * L)
    s, u = f.indices(s=S, u=Lo)
    X = f.input("X", S, L)
    f.output("Y", (s, u), X[s, u / 2])
    with pytest.raises(DeriveError, match=r"bad_extent: check: Lo = L\*tau: cannot declare this extent: "
                                          r"tau is neither a dimension nor an integer hyper-parameter"):
        check_forward(f)


def test_a_dimension_no_array_carries_is_refused_in_one_line():
    f = Forward("unsized", "")
    S, P = f.dims("S P")
    s, j = f.indices(s=S, j=P * P)
    X = f.input("X", S, P * P)
    f.output("Y", (s, j), X[s, j])
    with pytest.raises(DeriveError, match="dimension P is the size of no argument"):
        check_forward(f)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_dimension_solved_from_its_axis_must_be_whole(backend, user_kernels):
    k = Kernels("pair_product", backend, loaded=user_kernels("pair_product", backend))
    y = k.forward(_arrays(backend, X=(3, 8)))["Y"]
    assert tuple(y.shape) == (3, 4)
    with pytest.raises(ValueError, match=r"^pair_product_forward: axis 1 of X has 7 elements: it must be 2\*P "
                                         r"for a whole P >= 1$"):
        k.forward(_arrays(backend, X=(3, 7)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_axis_sized_by_a_hyper_parameter_is_checked_against_it(backend, user_kernels):
    k = Kernels("learned_window", backend, loaded=user_kernels("learned_window", backend))
    assert tuple(k.forward(_arrays(backend, X=(2, 6), g=(3,)), k=3)["Y"].shape) == (2, 4)
    with pytest.raises(ValueError, match=r"^learned_window_forward: axis 0 of g has 4 elements, but k = 3$"):
        k.forward(_arrays(backend, X=(2, 6), g=(4,)), k=3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_index_range_expression_is_checked_on_both_sides(backend, user_kernels):
    k = Kernels("conv1d_range", backend, loaded=user_kernels("conv1d_range", backend))
    with pytest.raises(ValueError, match=r"^conv1d_range_forward: L \+ 1 - K = -1 for K=5, L=3; it must be at "
                                         r"least 1$"):
        k.forward(_arrays(backend, X=(2, 1, 3), W=(1, 1, 5), b=(1,)))
    env = k.forward(_arrays(backend, X=(2, 1, 6), W=(1, 1, 3), b=(1,)))
    with pytest.raises(ValueError, match=r"^conv1d_range_backward: axis 2 of dY has 3 elements, but "
                                         r"L \+ 1 - K = 4 for K=3, L=6$"):
        k.backward(_arrays(backend, dY=(2, 1, 3))["dY"], env)


def test_a_declared_extent_is_shown_in_the_derivation(user_derived):
    text = (user_derived / "DERIVATIONS.md").read_text()
    section = text[text.index("\n## upsample_zeros1d\n"):]
    assert "Lo &= L factor" in section[:section.index("\n## ", 5)]
