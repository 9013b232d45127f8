"""Every derived module as a torch.autograd.Function passes gradcheck in float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from derive import registry
from runtime.torch_layers import DerivedLayer, function
from tests.conftest import as_tensor, draw, kernels_of, sizes_for


@pytest.mark.parametrize("name", registry.MODULES)
def test_gradcheck(name):
    forward = registry.load(name)
    k = kernels_of(name, "torch")
    rng = np.random.default_rng(0)
    sizes = sizes_for(forward, rng, batch=3, feature=4)
    arrays = draw(forward, sizes, rng)
    values = [as_tensor(arrays[n], requires_grad=n not in k.CONSTS) for n in k.ARGUMENTS]
    assert torch.autograd.gradcheck(function(name).apply, values, eps=1e-6, atol=1e-6)


def test_layer_in_an_ordinary_model_trains_like_pytorch():
    torch.manual_seed(0)
    X, y = torch.randn(16, 5, dtype=torch.float64), torch.randint(0, 3, (16,))
    W1, W2 = torch.randn(8, 5, dtype=torch.float64) * 0.3, torch.randn(3, 8, dtype=torch.float64) * 0.3
    ours = torch.nn.Sequential(DerivedLayer("linear", W=W1.clone(), b=torch.zeros(8, dtype=torch.float64)),
                               DerivedLayer("layer_norm", gamma=torch.ones(8, dtype=torch.float64),
                                            beta=torch.zeros(8, dtype=torch.float64)),
                               DerivedLayer("silu"),
                               DerivedLayer("linear", W=W2.clone(), b=torch.zeros(3, dtype=torch.float64)))
    ref = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.LayerNorm(8), torch.nn.SiLU(), torch.nn.Linear(8, 3)).double()
    with torch.no_grad():
        ref[0].weight.copy_(W1), ref[0].bias.zero_(), ref[3].weight.copy_(W2), ref[3].bias.zero_()
    for model in (ours, ref):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X), y).backward()
            opt.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_loss_function_chains_the_incoming_gradient():
    X = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    T = torch.softmax(torch.randn(4, 3, dtype=torch.float64), 1)
    L = function("softmax_cross_entropy").apply(X, T)
    (3.0 * L).backward()
    Xr = X.detach().clone().requires_grad_()
    (3.0 * torch.nn.functional.cross_entropy(Xr, T)).backward()
    torch.testing.assert_close(X.grad, Xr.grad)
