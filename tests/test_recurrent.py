"""The recurrent network over derived cells: its first Adam steps are torch.nn.LSTM's / GRU's (float64)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from runtime.kernels.backend import Backend
from runtime.nets.recurrent import RecurrentNetwork
from runtime.nets.torch_recurrent import torch_copy
from runtime.training.optim import Adam
from runtime.training.cli import Stopped
from runtime.training.palindromes import palindromes
from tests.conftest import BACKENDS

TORCH_CELLS = {"lstm_cell": torch.nn.LSTM, "gru_cell": torch.nn.GRU}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", sorted(TORCH_CELLS))
def test_twenty_adam_steps_match_torch_nn(cell, backend):
    S, T, H, C = 8, 6, 7, 10
    b = Backend(backend, "cpu", "float64")
    net = RecurrentNetwork(cell, C, H, C, backend=b, seed=1)
    opt = Adam(net, 1e-2)
    twin = torch_copy(net)   # what --backend autograd trains: nn.LSTM / nn.GRU and nn.Linear, net's weights
    assert isinstance(twin.rnn, TORCH_CELLS[cell])
    rnn = twin.rnn
    ref_opt = torch.optim.Adam(twin.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    for step in range(20):
        x, y = palindromes(rng, S, T)
        onehot = np.eye(C)[x]
        logits = net.forward(b.asarray(onehot))
        loss = net.loss.forward(logits, b.asarray(y))
        net.backward(net.loss.backward(logits, b.asarray(y)))
        opt.step()
        ref_loss = torch.nn.functional.cross_entropy(twin(torch.as_tensor(onehot)), torch.as_tensor(y))
        ref_opt.zero_grad()
        ref_loss.backward()
        ref_opt.step()
        assert abs(float(loss) - ref_loss.item()) <= 1e-8, f"step {step}: loss {float(loss)} vs {ref_loss.item()}"
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        np.testing.assert_allclose(b.to_numpy(net.cell.params[name]), getattr(rnn, f"{name}_l0").detach().numpy(),
                                   rtol=0, atol=1e-8)


def test_palindromes_end_with_their_first_digit():
    x, y = palindromes(np.random.default_rng(0), 50, 9)
    assert x.shape == (50, 8) and y.shape == (50,)
    assert (y == x[:, 0]).all()
    full = np.concatenate([x, y[:, None]], axis=1)
    assert (full == full[:, ::-1]).all()


def test_a_stopped_and_resumed_run_ends_as_an_uninterrupted_one(tmp_path):
    from runtime import train_rnn
    from tests.test_training import assert_same_folder, stop_at

    quiet = dict(progress=False, log=lambda *a: None)

    def config(name):
        return train_rnn.RNNConfig(model_type="gru", input_length=4, num_hidden=6, batch_size=8, max_steps=5,
                                   eval_freq=3, dtype="float64", train_size=64, test_size=16,
                                   out=str(tmp_path / name))
    train_rnn.run(config("whole"), **quiet)
    cfg = config("stopped")
    trainer = stop_at(train_rnn.trainer_for(cfg, train_rnn.data_for(cfg)), 4)
    with pytest.raises(Stopped, match="stopped after step 4"):
        train_rnn.run(cfg, trainer=trainer, **quiet)
    train_rnn.run(cfg, resume=True, **quiet)
    assert_same_folder(tmp_path / "whole", tmp_path / "stopped")


def test_the_command_line_trains_and_refuses_bad_input_in_one_line(tmp_path):
    run = lambda *args: subprocess.run([sys.executable, "-m", "runtime.train_rnn", *args], capture_output=True,
                                       text=True, timeout=300)
    r = run("--input_length", "4", "--num_hidden", "8", "--train_steps", "4", "--eval_freq", "2", "--batch_size",
            "8", "--train_size", "32", "--test_size", "8", "--out", str(tmp_path / "run"), "--no-progress")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [e["step"] for e in metrics["evaluations"]] == [2, 4]
    assert {p.name for p in (tmp_path / "run").iterdir()} == {"checkpoint.npz", "metrics.json", "loss.png",
                                                               "accuracy.png"}
    (tmp_path / "file").write_text("mine")
    for args in (["--out", str(tmp_path / "file")], ["--input_length", "1"], ["--model_type", "rnn"]):
        r = run(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


def test_truncation_keeps_the_last_steps_gradient():
    """truncate=T is every step; truncate=k < T drops the earlier steps' part (a different gradient); < 1 is refused."""
    rng = np.random.default_rng(5)
    x, y = palindromes(rng, 4, 6)
    onehot = np.eye(10)[x]

    def grads(truncate):
        net = RecurrentNetwork("lstm_cell", 10, 5, 10, backend=Backend("numpy", "cpu", "float64"), seed=2,
                               truncate=truncate)
        logits = net.forward(onehot)
        net.loss.forward(logits, y)
        net.backward(net.loss.backward(logits, y))
        return {k: v.copy() for k, v in net.cell.grads.items()}
    whole, all_steps, last = grads(None), grads(5), grads(1)
    for k in whole:
        np.testing.assert_array_equal(whole[k], all_steps[k])
        assert not np.allclose(whole[k], last[k])
    with pytest.raises(ValueError, match="truncate must be at least 1"):
        RecurrentNetwork("gru_cell", 10, 5, 10, truncate=0)
