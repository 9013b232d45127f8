"""The benchmarks: the MLP's hand-written peer computes what autograd computes, and both CLIs report every contender."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.handwritten_mlp import HandwrittenMLP
from benchmarks.mlp import epoch_flops

ROOT = Path(__file__).resolve().parents[1]
HAVE_DATA = (ROOT / "data" / "cifar-10-batches-py" / "test_batch").exists()


@pytest.mark.parametrize("use_batch_norm", [False, True])
def test_handwritten_peer_takes_the_autograd_sgd_step(use_batch_norm):
    """float64: one step of the peer equals nn.Linear/BatchNorm1d/ELU + cross-entropy + SGD on the same weights."""
    sizes, lr = [12, 7, 5, 3], 0.1
    peer = HandwrittenMLP(sizes, use_batch_norm, seed=1, dtype=np.float64)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((9, sizes[0])), rng.integers(0, sizes[-1], 9)
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        lin = torch.nn.Linear(a, b).double()
        lin.weight.data = torch.tensor(peer.W[i].T.copy())
        lin.bias.data = torch.tensor(peer.b[i].copy())
        layers.append(lin)
        if i < len(sizes) - 2:
            layers += [torch.nn.BatchNorm1d(b).double()] if use_batch_norm else []
            layers.append(torch.nn.ELU())
    model = torch.nn.Sequential(*layers)
    loss = torch.nn.functional.cross_entropy(model(torch.tensor(x)), torch.tensor(y))
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    got = peer.train_step(x, y, lr)
    assert abs(got - loss.item()) < 1e-12
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    for i, lin in enumerate(linears):
        np.testing.assert_allclose(peer.W[i], lin.weight.detach().numpy().T, rtol=0, atol=1e-12)
        np.testing.assert_allclose(peer.b[i], lin.bias.detach().numpy(), rtol=0, atol=1e-12)
    norms = [m for m in model if isinstance(m, torch.nn.BatchNorm1d)]
    for i, bn in enumerate(norms):
        np.testing.assert_allclose(peer.gamma[i], bn.weight.detach().numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(peer.beta[i], bn.bias.detach().numpy(), rtol=0, atol=1e-12)


def test_flop_limit_counts_the_products_an_epoch_needs():
    # Forward and dW of each layer (2ab + 2bc), dX of the second only (bc): the first layer's dX feeds nobody.
    a, b, c, n = 6, 4, 3, 10
    assert epoch_flops([a, b, c], n) == 2 * n * (2 * a * b + 2 * b * c + b * c)


@pytest.mark.data
@pytest.mark.skipif(not HAVE_DATA, reason="CIFAR-10 not in data/ (make data builds it from ../shared)")
def test_bench_reports_every_contender_against_both_baselines():
    r = subprocess.run([sys.executable, "-m", "benchmarks.mlp", "--epochs", "1", "--hidden_dims", "8",
                        "--batch_size", "1024", "--device", "cpu"], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "vs hand-written numpy" in r.stdout and "vs autograd" in r.stdout and "FLOP limit" in r.stdout
    for label in ("generated numpy (cpu)", "hand-written numpy (cpu)", "generated torch (cpu)", "autograd (cpu)"):
        row = next(line for line in lines if line.startswith(label))
        assert row.count("×") == 2 and row.rstrip().endswith("%")


def test_cnn_bench_reports_every_contender_and_a_summary():
    """Tiny settings, CPU only: every contender row, its ratio, the per-convolution table and the summary line."""
    r = subprocess.run([sys.executable, "-m", "benchmarks.cnn", "--steps", "1", "--rounds", "2", "--batch_size", "2",
                        "--repeats", "1", "--device", "cpu"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for label in ("torch.nn + autograd (CPU)", "generated numpy (CPU)", "generated torch (CPU)"):
        row = next(line for line in lines if line.startswith(label))
        assert re.search(r" \d+\.\d+x$", row), row
    assert "round 2/2" in r.stderr
    assert sum(" @ " in line for line in lines) == 8   # one row per convolution of the small VGG
    summary = next(line for line in lines if line.startswith("summary:"))
    assert re.fullmatch(r"summary: generated torch \d+\.\d+x autograd, generated numpy \d+\.\d+x autograd \(CPU\)",
                        summary), summary


def test_cells_bench_reports_each_cell_against_autograd():
    """Tiny settings: a row per cell and contender, its time and its ratio to torch.nn with autograd."""
    r = subprocess.run([sys.executable, "-m", "benchmarks.cells", "--batch", "4", "--hidden", "3", "--rounds", "2",
                        "--calls", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for cell in ("lstm_cell", "gru_cell"):
        for contender in ("generated torch", "generated numpy", "autograd"):
            row = next(line for line in r.stdout.splitlines() if line.startswith(f"{cell:10s} {contender}"))
            assert re.search(r" \d+\.\d+ ms/step +\d+\.\d+x autograd$", row), row
