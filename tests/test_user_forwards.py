"""User-style forwards the engine has never seen (tests/user_forwards/), derived by the command line.

Each is checked against an independent PyTorch implementation of the same
module (tests/user_references.py): the forward's value, and the gradients of
autograd through that implementation, in float64, on both backends. At the
kinks, PyTorch's tie convention: the slope is the constant branch's (``F.relu``
at 0, ``torch.clamp`` at its bounds).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from derive.engine import extents
from runtime.kernels.calling import Kernels
from tests.compare import assert_close, autograd_reference, run_kernels
from tests.conftest import BACKENDS, USER_MODULES, draw, load_user_forward, sizes_for
from tests.user_references import REFERENCES



def test_every_user_forward_has_a_reference():
    assert len(USER_MODULES) >= 10
    assert set(USER_MODULES) <= set(REFERENCES)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", [n for n in USER_MODULES if len(load_user_forward(n).outputs) > 1])
def test_an_omitted_upstream_counts_as_zero(name, backend, user_kernels):
    """Several outputs: the gradients with one upstream given and the others omitted (None) are autograd's
    through that output alone."""
    forward = load_user_forward(name)
    kernels = Kernels(name, backend, loaded=user_kernels(name, backend))
    rng = np.random.default_rng(3)
    sizes = sizes_for(forward, rng)
    arrays = draw(forward, sizes, rng)
    for kept in range(len(forward.outputs)):
        upstream = [rng.standard_normal(extents.shape(o.tensor.dims, sizes)) if n == kept else None
                    for n, o in enumerate(forward.outputs)]
        _, grads = run_kernels(kernels, arrays, dict(kernels.SCALARS), upstream, backend)
        _, ref = autograd_reference(REFERENCES[name], forward, arrays, dict(kernels.SCALARS), upstream)
        for g in ref:
            assert_close(grads[g], ref[g], f"{name} {g} (only output {kept})")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", USER_MODULES)
def test_user_forward_matches_an_independent_pytorch_module(name, backend, user_kernels):
    forward = load_user_forward(name)
    kernels = Kernels(name, backend, loaded=user_kernels(name, backend))
    scalars = dict(kernels.SCALARS)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        sizes = sizes_for(forward, rng)
        arrays = draw(forward, sizes, rng)
        shapes = [extents.shape(o.tensor.dims, sizes) for o in forward.outputs]
        upstream = [rng.standard_normal(shape) if shape else 0.8 for shape in shapes]
        if len(shapes) == 1:
            upstream = upstream[0]
        y, grads = run_kernels(kernels, arrays, scalars, upstream, backend)
        ref_y, ref_grads = autograd_reference(REFERENCES[name], forward, arrays, scalars, upstream)
        assert_close(y, ref_y, f"{name} forward (seed {seed})")
        assert set(grads) == set(ref_grads)
        for g in ref_grads:
            assert_close(grads[g], ref_grads[g], f"{name} {g} (seed {seed})")


# At a kink: PyTorch functions whose slope there is the constant branch's (relu at 0, clamp at its bounds).
TIES = {
    "hard_tanh": (lambda X: torch.clamp(X, -1.0, 1.0), {"X": [-1.0, 1.0, -2.0, 0.0, 2.0]}),
    "relu6": (lambda X: torch.clamp(X, 0.0, 6.0), {"X": [0.0, 6.0, -1.0, 3.0, 7.0]}),
    "hard_sigmoid": (lambda X: torch.clamp(X / 6 + 0.5, 0.0, 1.0), {"X": [-3.0, 3.0, -4.0, 0.0, 4.0]}),
    "prelu": (lambda X, a: torch.relu(X) - a * torch.relu(-X), {"X": [0.0, -1.0, 1.0], "a": [0.25]}),
    "hinge": (lambda X, T: torch.relu(1 - T * X).mean(), {"X": [1.0, 2.0, -1.0], "T": [1.0, 0.5, 1.0]}),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(TIES))
def test_slopes_at_the_kinks_follow_pytorch(name, backend, user_kernels):
    forward = load_user_forward(name)
    reference, values = TIES[name]
    kernels = Kernels(name, backend, loaded=user_kernels(name, backend))
    arrays = {}
    for t in forward.arguments:
        v = np.asarray(values[t.name], dtype=np.float64)
        arrays[t.name] = v.reshape(-1, 1) if len(t.dims) == 2 else v
    out = forward.out.tensor.dims
    upstream = 1.0 if not out else np.ones((len(values["X"]), 1))
    _, grads = run_kernels(kernels, arrays, {}, upstream, backend)
    _, ref = autograd_reference(reference, forward, arrays, {}, upstream)
    for g in ref:
        np.testing.assert_array_equal(np.asarray(grads[g], dtype=np.float64), ref[g], err_msg=f"{name} {g}")


def test_a_pooled_intermediate_saves_its_arg_max(user_kernels):
    """The forward of pooled_tanh returns its pool's arg-max and the backward reads it (ir.window_key matches the
    window maximum whatever the backward names its indices)."""
    for backend in BACKENDS:
        k = user_kernels("pooled_tanh", backend)
        assert k.INDICES == ("P_argmax",) and "P_argmax" in k.SAVED and "P_argmax" in k.RETURNS
