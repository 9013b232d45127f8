"""Second order: every module's ``<name>_hvp`` against PyTorch's double backward, both backends, float64.

For a layer, ``hvp(v)`` is the gradient of Σ_T <v_T, dT> with respect to the arguments and the upstream dY
(what ``torch.autograd.grad(grads, inputs, v)`` gives for ``grads`` made with ``create_graph=True``); for a
loss, ``hX`` is the Hessian–vector product ``(∇²L) v`` (``torch.autograd.functional.hvp``).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from derive import registry
from runtime.kernels.calling import Kernels
from tests.conftest import BACKENDS, as_tensor
from tests.test_kernels import REFERENCE, Case, as_tuple, close

MODULES = [n for n in registry.SECOND_ORDER if n in REFERENCE]


def products(case, directions):
    """(hvp results by name) of the generated kernels at ``case``, along ``directions`` (by gradient name)."""
    k = case.mod
    env = case.kernels.forward({n: case.tensor(a) for n, a in case.arrays.items()}, **case.scalars)
    upstream = case.upstream()
    ups = dict(zip(k.UPSTREAMS, [upstream] if not isinstance(upstream, dict) else [upstream[u] for u in k.UPSTREAMS]))
    values = {**env, **ups}
    out = getattr(k, f"{case.name}_hvp")(*[case.tensor(directions[g]) for g in k.GRADIENTS],
                                         **{n: values[n] for n in k.HVP_ARGUMENTS}, **case.scalars)
    return {n: case.numpy(v) for n, v in zip(k.HVP_RESULTS, as_tuple(out))}


def double_backward(case, reference, directions):
    """PyTorch: the gradient of Σ <v, dT> (dT by autograd with create_graph) by the arguments and upstreams."""
    xs = {n: as_tensor(a, requires_grad=n in case.wrt) for n, a in case.arrays.items()}
    ys = as_tuple(reference(**xs, **case.scalars))
    if case.dY is None:
        ups = {f"d{case.outputs[0]}": torch.tensor(1.0, dtype=torch.float64, requires_grad=True)}
        outs = [ys[0] * ups[f"d{case.outputs[0]}"]]
        grads = torch.autograd.grad(outs, [xs[n] for n in case.wrt], create_graph=True)
    else:
        ups = {f"d{n}": torch.tensor(case.dY[n], requires_grad=True) for n in case.outputs}
        grads = torch.autograd.grad(ys, [xs[n] for n in case.wrt], [ups[f"d{n}"] for n in case.outputs],
                                    create_graph=True)
    wrt = {**{n: xs[n] for n in case.wrt}, **ups}
    v = [torch.tensor(directions[f"d{n}"]) for n in case.wrt]
    second = torch.autograd.grad(grads, list(wrt.values()), v, allow_unused=True)
    return {f"h{n}": (g.detach().numpy() if g is not None else np.zeros(np.shape(wrt[n].detach())))
            for n, g in zip(wrt, second)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", MODULES)
def test_hvp_matches_pytorch_double_backward(name, backend):
    for seed in range(2):
        case = Case(name, backend, "random", seed)
        if name.startswith("batch_norm") and case.arrays["X"].size == case.arrays["X"].shape[1]:
            continue  # PyTorch's batch norm refuses one value per feature in training mode
        rng = np.random.default_rng(100 + seed)
        directions = {f"d{n}": rng.standard_normal(case.arrays[n].shape) for n in case.wrt}
        got = products(case, directions)
        want = double_backward(case, REFERENCE[name], directions)
        assert set(got) == set(want)
        for n in want:
            close(got[n], want[n])


@pytest.mark.parametrize("name", [n for n in MODULES if registry.load(n).scalar_output])
def test_a_loss_hvp_is_the_hessian_times_v(name):
    """torch.autograd.functional.hvp of the loss as a function of its input X."""
    case = Case(name, "torch", "random", seed=3)
    v = np.random.default_rng(7).standard_normal(case.arrays["X"].shape)
    got = products(case, {"dX": v})["hX"]
    others = {n: as_tensor(a) for n, a in case.arrays.items() if n != "X"}
    _, want = torch.autograd.functional.hvp(lambda X: REFERENCE[name](X=X, **others, **case.scalars),
                                            as_tensor(case.arrays["X"]), torch.tensor(v))
    close(got, want.numpy(), 1e-10)


@pytest.mark.parametrize("name", registry.SECOND_ORDER)
def test_drop_in_layers_pass_gradgradcheck(name):
    """Double backward through the derived layer: its backward is an autograd Function whose backward is _hvp."""
    from runtime.torch_layers import function
    from tests.conftest import draw, kernels_of, sizes_for

    forward = registry.load(name)
    k = kernels_of(name, "torch")
    rng = np.random.default_rng(0)
    sizes = sizes_for(forward, rng, batch=2, feature=3)
    arrays = draw(forward, sizes, rng)
    values = [as_tensor(arrays[n], requires_grad=n not in k.CONSTS) for n in k.ARGUMENTS]
    assert torch.autograd.gradgradcheck(function(name).apply, values, eps=1e-6, atol=1e-6)


def test_double_backward_without_a_second_order_is_one_line(user_derived):
    """A module derived to the first order alone (python -m derive FILE.py, no --order 2): its layers train, and a
    second derivative through them is refused in one line."""
    from runtime.torch_layers import function

    X = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    a = torch.full((4,), 0.25, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(function("prelu", kernels=user_derived).apply(X, a).sum(), X, create_graph=True)
    with pytest.raises(RuntimeError, match=r"^prelu: double backward needs the module's second order, the kernel "
                                           r"prelu_hvp \(derive it with python -m derive FILE.py --order 2\)$"):
        (g ** 2).sum().backward()


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_omitted_upstream_of_a_module_with_several_outputs_is_zero_in_its_hvp_too(backend):
    """lstm_cell's backward takes dh and dc, either None; its _hvp takes them as arguments the same way."""
    case = Case("lstm_cell", backend, "random", seed=4)
    k = case.mod
    env = case.kernels.forward({n: case.tensor(a) for n, a in case.arrays.items()}, **case.scalars)
    rng = np.random.default_rng(9)
    directions = [case.tensor(rng.standard_normal(case.arrays[n].shape)) for n in case.wrt]
    args = {n: env[n] for n in k.HVP_ARGUMENTS if n in env}
    dh = case.tensor(case.dY["h"])
    omitted = as_tuple(getattr(k, "lstm_cell_hvp")(*directions, **args, dh=dh, dc=None))
    zeros = as_tuple(getattr(k, "lstm_cell_hvp")(*directions, **args, dh=dh,
                                                 dc=case.tensor(np.zeros_like(case.dY["c"]))))
    for a, b in zip(omitted, zeros):
        close(case.numpy(a), case.numpy(b), 0)


# User forwards (tests/user_forwards/) derived with --order 2: activations, losses, a gate, a norm, a pooled
# convolution, several outputs, a shared let.
USER_SECOND = ["prelu", "gelu_tanh", "mish", "huber", "bce_logits", "rms_norm_scale", "glu_half", "pool_of_conv",
               "mean_and_var", "linear_tanh", "softmax_temperature", "cosine_sim", "act_reg",
               "onehot_pick"]


@pytest.fixture(scope="session")
def second_order_kernels(tmp_path_factory):
    from tests.conftest import USER_FORWARDS, derived_once

    return derived_once(tmp_path_factory, "order2", [USER_FORWARDS / f"{n}.py" for n in USER_SECOND], "--order", "2")


# The tests of the user forwards' second order, on one pytest-xdist worker: the other does not wait for their kernels.
ORDER2 = pytest.mark.xdist_group("order2")


@ORDER2
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", USER_SECOND)
def test_user_forwards_hvp_matches_pytorch_double_backward(name, backend, second_order_kernels):
    from runtime.kernels.calling import load_file
    from tests.conftest import draw, load_user_forward, sizes_for
    from tests.user_references import REFERENCES

    forward = load_user_forward(name)
    k = load_file(second_order_kernels / backend / f"{name}.py")
    kernels = Kernels(name, backend, loaded=k)
    wrap = (lambda a: a) if backend == "numpy" else as_tensor
    unwrap = lambda v: v if isinstance(v, np.ndarray) or np.isscalar(v) else v.detach().numpy()
    rng = np.random.default_rng(1)
    sizes = sizes_for(forward, rng)
    arrays = draw(forward, sizes, rng)
    scalars = dict(k.SCALARS)
    wrt = [t.name for t in forward.differentiable]
    outs = [o.tensor.name for o in forward.outputs]
    env = kernels.forward({n: wrap(a) for n, a in arrays.items()}, **scalars)
    # One upstream per output (a loss: its dL, an argument of the second order as well).
    ups = {f"d{o}": rng.standard_normal(np.shape(unwrap(env[o]))) if np.ndim(unwrap(env[o])) else 0.8 for o in outs}
    values = {**env, **{u: wrap(x) if np.ndim(x) else x for u, x in ups.items()}}
    v = {n: rng.standard_normal(arrays[n].shape) for n in wrt}
    got = getattr(k, f"{name}_hvp")(*[wrap(v[n]) for n in wrt], **{n: values[n] for n in k.HVP_ARGUMENTS}, **scalars)
    got = {r: unwrap(g) for r, g in zip(k.HVP_RESULTS, as_tuple(got))}
    # PyTorch: gradients with create_graph through the independent reference, then their derivative along v.
    xs = {n: as_tensor(a, requires_grad=n in wrt) for n, a in arrays.items()}
    ys = as_tuple(REFERENCES[name](**xs, **scalars))
    up_t = {u: torch.tensor(float(x) if np.ndim(x) == 0 else x, dtype=torch.float64, requires_grad=True)
            for u, x in ups.items()}
    # Σ over the outputs of <upstream, output>, differentiated with create_graph (scalar outputs times their dL).
    objective = sum((y * up_t[f"d{o}"]).sum() for y, o in zip(ys, outs))
    grads = torch.autograd.grad(objective, [xs[n] for n in wrt], create_graph=True)
    by = {**{n: xs[n] for n in wrt}, **up_t}
    second = torch.autograd.grad(grads, list(by.values()), [torch.tensor(v[n]) for n in wrt], allow_unused=True)
    for n, g in zip(by, second):
        want = g.detach().numpy() if g is not None else np.zeros(np.shape(by[n].detach()))
        r = next(r for r, w in k.HVP_WRT.items() if w == n)
        close(got[r], want)


@ORDER2
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_product_that_is_exactly_zero_stays_zero_at_the_largest_upstream(backend, dtype, second_order_kernels):
    """mean_and_var's hX = 2 (D v_u − Σ_q v_q) dvar / D²: along v = 1 it is exactly 0 at every dvar, the largest
    finite one included, where 2 · dvar alone overflows (0 · inf was nan before the constant came last)."""
    from runtime.kernels.calling import load_file

    k = load_file(second_order_kernels / backend / "mean_and_var.py")
    wrap = (lambda a: a) if backend == "numpy" else torch.from_numpy
    big = np.finfo(dtype).max
    for D in (1, 2, 3):
        X = np.linspace(-1, 2, 2 * D, dtype=dtype).reshape(2, D)
        for dvar in (big, -big):
            hX, hdmu, hdvar = k.mean_and_var_hvp(wrap(np.ones_like(X)), X=wrap(X), dmu=wrap(np.ones(2, dtype)),
                                                 dvar=wrap(np.full(2, dvar, dtype)))
            assert np.all(np.asarray(hX) == 0), (D, dvar, hX)


@ORDER2
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_norm_at_the_largest_input_keeps_its_order_one_terms(backend, dtype, second_order_kernels):
    """rms_norm_scale on one feature: hdY = v_X ∂Y/∂X + v_g ∂Y/∂g = g ε/(X² + ε)^(3/2) + X/√(X² + ε), which is ±1
    at X = ±max. Written with the scale's powers apart, X max(1, s)⁻² underflowed to 0 before its · max(1, s)."""
    from runtime.kernels.calling import load_file

    k = load_file(second_order_kernels / backend / "rms_norm_scale.py")
    wrap = (lambda a: a) if backend == "numpy" else torch.from_numpy
    for sign in (1, -1):
        X = np.full((2, 1), sign * np.finfo(dtype).max, dtype)
        one = np.ones_like(X)
        hX, hg, hdY = k.rms_norm_scale_hvp(wrap(one), wrap(np.ones(1, dtype)), X=wrap(X),
                                           r_scale=wrap(np.full(1, 0.6, dtype)), dY=wrap(one))
        np.testing.assert_allclose(np.asarray(hdY), sign * one, rtol=4 * np.finfo(dtype).eps)
