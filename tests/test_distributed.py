"""Data-parallel training: two processes on gloo (this CPU) through torchrun and DistributedDataParallel.

Without batch norm, 5 steps on two processes (each its half of every batch, gradients averaged) give the
parameters of one process on the whole batches (float64, 1e-10). With batch norm each process normalises by
its own half's statistics, as plain DDP does: the result equals one process stepping each half on its own copy
of the network and averaging the two gradients, and rank 0 keeps its own running statistics.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.train import Config, trainer_for
from runtime.training import checkpoint
from tests.synthetic import synthetic

ROOT = Path(__file__).resolve().parents[1]
STEPS = 5


def torchrun(out: Path, use_batch_norm: bool):
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(ROOT / "tests" / "distributed_worker.py"), str(out), str(STEPS),
                        "bn" if use_batch_norm else "plain"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return [checkpoint.load(out / f"rank{n}.npz") for n in (0, 1)]


def config(use_batch_norm):
    return Config(hidden_dims=[16, 8], batch_size=32, lr=0.05, use_batch_norm=use_batch_norm, backend="torch",
                  device="cpu", dtype="float64")


def assert_close(got: dict, want: dict, keys=None):
    for k in keys or want:
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-10 * (1 + np.abs(want[k]).max()), err_msg=k)


def test_two_processes_equal_one_on_the_combined_batch(tmp_path):
    (state0, config0), (state1, _) = torchrun(tmp_path, use_batch_norm=False)
    assert config0["world_size"] == 2
    single = trainer_for(config(False), synthetic(n_train=320, n_eval=8))
    single.train(STEPS)
    want = single.net.state_dict()
    assert state0.keys() == want.keys()
    assert_close(state0, want)
    assert_close(state1, want)
    moved = trainer_for(config(False), synthetic(n_train=320, n_eval=8)).net.state_dict()
    assert any(np.abs(want[k] - moved[k]).max() > 1e-3 for k in want)   # the steps did something


def test_batch_norm_statistics_are_per_process(tmp_path):
    (state0, _), (state1, _) = torchrun(tmp_path, use_batch_norm=True)
    data = synthetic(n_train=320, n_eval=8)
    # Two copies of the network, one per process: each steps on its half; the gradients are averaged.
    copies = [trainer_for(Config(**{**config(True).as_dict(), "lr": 0.05}), data) for _ in (0, 1)]
    nets = [c.net for c in copies]
    half = 16
    for step in range(STEPS):
        x, y = copies[0].batch(step)
        grads = []
        for n, net in enumerate(nets):
            net.train()
            xs, ys = x[n * half:(n + 1) * half], y[n * half:(n + 1) * half]
            logits = net.forward(xs)
            net.backward(net.loss.backward(logits, ys))
            grads.append({(i, k): layer.grads[k].clone() for i, layer in enumerate(net.layers) for k in layer.params})
        for net in nets:
            for i, layer in enumerate(net.layers):
                for k in layer.params:
                    layer.params[k] -= 0.05 * (grads[0][i, k] + grads[1][i, k]) / 2
    want0, want1 = nets[0].state_dict(), nets[1].state_dict()
    assert_close(state0, want0)
    assert_close(state1, want1)
    stats = [k for k in want0 if k.endswith("running_mean")]
    assert stats and any(np.abs(want0[k] - want1[k]).max() > 1e-6 for k in stats)   # the two differ
