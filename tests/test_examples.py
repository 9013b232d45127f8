"""The course's index-gymnastics examples: closed forms as the course gives them, kernels against autograd."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from derive import examples
from derive.engine.derivation import derive
from derive.engine.latex import matrix_notation
from derive.engine.text import index_text
from runtime.kernels.calling import Kernels

EXAMPLES = {f.name: f for f in examples.forwards()}

# The course's answers (assignment sections 1-2), as the engine writes them.
COURSE = {
    "dot": r"\mathrm{d}x = a",
    "bilinear": r"\mathrm{d}X = b c^\top",
    "quadratic_form": r"\mathrm{d}x = \left(B^\top + B\right) x",
    "trace_product": r"\mathrm{d}X = V^\top W^\top",
    "norm": r"\mathrm{d}w = \frac{1}{\|w\|} \, w",
    "trace": r"\mathrm{d}S = I",
}


@pytest.mark.parametrize("name", sorted(COURSE))
def test_closed_form_is_the_courses(name):
    f = EXAMPLES[name]
    (g,) = derive(f).gradients
    assert matrix_notation(g.lhs, g.expr, f.latex) == COURSE[name]


def test_gram_jacobian_keeps_a_delta_in_index_form():
    f = EXAMPLES["gram"]
    (g,) = derive(f).gradients
    assert index_text(g.expr) == "δ_in*Q_mj + δ_jn*Q_mi"
    assert matrix_notation(g.lhs, g.expr, f.latex) is None  # rank 4: no matrix reading
    assert [s.reason for s in g.steps][:2] == ["differentiate", "sift the Kronecker deltas"]


def _kernels(name, backend):
    return importlib.import_module(f"generated.examples.{backend}.{name}")


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_kernels_match_autograd(name, backend):
    f = EXAMPLES[name]
    rng = np.random.default_rng(0)
    sizes = {d: n for d, n in zip(sorted({d for t in f.tensors.values() for d in t.dims}, key=str), (3, 4, 5))}
    arrays = {t.name: rng.standard_normal(tuple(sizes[d] for d in t.dims)) for t in f.arguments}
    k = _kernels(name, backend)
    wrap = (lambda a: a) if backend == "numpy" else torch.tensor
    bwd = getattr(k, f"{name}_backward")
    env = Kernels(name, backend, "generated.examples").forward({n: wrap(a) for n, a in arrays.items()})
    got = bwd(**{n: env[n] for n in k.SAVED})  # the upstream dL defaults to 1 (a Jacobian has none)
    (x_name,) = k.INPUTS
    fwd = getattr(_kernels(name, "torch"), f"{name}_forward")
    xs = {n: torch.tensor(a) for n, a in arrays.items()}
    first = (lambda out: out[0]) if len(k.RETURNS) > 1 else (lambda out: out)
    fn = lambda x: first(fwd(*[x if n == x_name else xs[n] for n in k.ARGUMENTS]))
    ref = torch.autograd.functional.jacobian(fn, xs[x_name])  # output axes, then input axes
    np.testing.assert_allclose(np.asarray(got), ref.numpy(), rtol=1e-12, atol=1e-12)
