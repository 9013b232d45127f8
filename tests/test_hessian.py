"""The Hessian's top eigenvalue by power iteration on the derived Hessian–vector products (runtime/hessian.py),
against the same iteration on PyTorch's double backward."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from runtime import hessian
from runtime.nets.mlp import MLP

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("activation, use_batch_norm", [("elu", False), ("relu", True), ("tanh", False)])
def test_the_derived_products_give_pytorchs_eigenvalue(activation, use_batch_norm):
    rng = np.random.default_rng(0)
    net = MLP(12, [8, 6], 5, use_batch_norm, activation, backend="numpy", dtype="float64", seed=1)
    layers = hessian.layers_of(net)
    x = torch.as_tensor(rng.standard_normal((16, 12)))
    T = torch.as_tensor(np.eye(5)[rng.integers(0, 5, 16)])
    params = [torch.as_tensor(a) for _, p, _ in layers for a in p.values()]
    start = [torch.as_tensor(rng.standard_normal(p.shape)) for p in params]
    ours, _, seq = hessian.top_eigenvalue(hessian.derived_loss(layers), params, x, T, 30, start)
    theirs, _, ref = hessian.top_eigenvalue(hessian.torch_loss(layers), params, x, T, 30, start)
    np.testing.assert_allclose(seq, ref, rtol=1e-10)   # every iterate, not only the last
    # A Rayleigh quotient of the Hessian: at most its largest eigenvalue (dense check on this small network).
    flat = torch.cat([p.reshape(-1) for p in params]).requires_grad_()

    def loss(flat_params):
        parts, at = [], 0
        for p in params:
            parts.append(flat_params[at:at + p.numel()].reshape(p.shape))
            at += p.numel()
        return hessian.torch_loss(layers)(parts, x, T)
    top = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat.detach())).abs().max().item()
    assert abs(ours) <= top * (1 + 1e-9) and abs(ours) >= 0.5 * top


def test_a_run_folder_without_a_checkpoint_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "runtime.hessian", "--run", str(tmp_path)], capture_output=True,
                       text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no checkpoint.npz" in r.stderr
