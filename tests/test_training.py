"""The training loop both networks share: a stop between steps, checkpoints that resume exactly, CLI edges.

A run stopped at a step (what Ctrl-C asks for) and resumed with ``--resume`` ends where an uninterrupted run
ends: the same parameters, running statistics, optimiser state and metrics, bit for bit (float64).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime import train, train_cnn
from runtime.training import checkpoint
from runtime.training.cli import Stopped
from tests.synthetic import random_images, synthetic

ROOT = Path(__file__).resolve().parents[1]


def stop_at(trainer, step: int):
    """Make ``trainer`` ask for a stop once ``step`` steps are done (as Ctrl-C during that step does)."""
    inner = trainer.run_step

    def run_step(x, y):
        out = inner(x, y)
        if trainer.step_count + 1 == step:
            trainer.request_stop()
        return out
    trainer.run_step = run_step
    return trainer


def without_seconds(metrics: dict) -> dict:
    out = json.loads(json.dumps(metrics))
    for record in out.get("epochs", []) + out.get("evaluations", []):
        record.pop("seconds")
    return out


def assert_same_folder(a: Path, b: Path):
    for name in ("checkpoint.npz", "best.npz"):
        if not (a / name).exists():
            continue
        sa, ca = checkpoint.load(a / name)
        sb, cb = checkpoint.load(b / name)
        assert sa.keys() == sb.keys()
        for k in sa:
            np.testing.assert_array_equal(sa[k], sb[k], err_msg=f"{name} {k}")
    ma = without_seconds(json.loads((a / "metrics.json").read_text()))
    mb = without_seconds(json.loads((b / "metrics.json").read_text()))
    ma["config"].pop("out"), mb["config"].pop("out")
    assert ma == mb


@pytest.mark.parametrize("use_batch_norm", [False, True])
def test_mlp_stopped_mid_epoch_and_resumed_ends_as_an_uninterrupted_run(tmp_path, use_batch_norm):
    data = synthetic(n_train=320, n_eval=64)
    quiet = dict(progress=False, log=lambda *a: None)

    def config(name):
        return train.Config(hidden_dims=[32, 16], batch_size=32, epochs=3, use_batch_norm=use_batch_norm,
                            dtype="float64", out=str(tmp_path / name))
    whole = train.run(config("whole"), data, **quiet)
    cfg = config("stopped")
    with pytest.raises(Stopped, match=r"stopped after step 14; .*checkpoint\.npz.*--resume"):
        train.run(cfg, data, trainer=stop_at(train.trainer_for(cfg, data), 14), **quiet)
    state, _ = checkpoint.load(tmp_path / "stopped" / "checkpoint.npz")
    assert int(state["trainer.step"]) == 14 and len(state["trainer.losses"]) == 4   # 10 steps an epoch
    saved = json.loads((tmp_path / "stopped" / "metrics.json").read_text())
    assert [e["epoch"] for e in saved["epochs"]] == [1] and (tmp_path / "stopped" / "loss.png").exists()
    resumed = train.run(cfg, data, resume=True, **quiet)
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    assert_same_folder(tmp_path / "whole", tmp_path / "stopped")


def sigint_inside_step(trainer, step: int, times: int):
    """Send this process ``times`` real SIGINTs from inside step ``step`` (after its forward and backward)."""
    import os
    import signal

    inner = trainer.dist.forward_backward

    def forward_backward(*args):
        out = inner(*args)
        if trainer.step_count + 1 == step:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        return out
    trainer.dist.forward_backward = forward_backward
    return trainer


def test_a_real_ctrl_c_inside_a_step_stops_after_it_and_a_second_keeps_the_last_checkpoint(tmp_path):
    data = synthetic(n_train=320, n_eval=64)
    quiet = dict(progress=False, log=lambda *a: None)

    def config(name):
        return train.Config(hidden_dims=[16], batch_size=32, epochs=2, dtype="float64", out=str(tmp_path / name))
    train.run(config("whole"), data, **quiet)
    once = config("once")
    with pytest.raises(Stopped, match="stopped after step 13;"):
        train.run(once, data, trainer=sigint_inside_step(train.trainer_for(once, data), 13, 1), **quiet)
    train.run(once, data, resume=True, **quiet)
    assert_same_folder(tmp_path / "whole", tmp_path / "once")   # the step finished before the stop
    twice = config("twice")
    with pytest.raises(Stopped, match="a second Ctrl-C cut MLP's step 13 short"):
        train.run(twice, data, trainer=sigint_inside_step(train.trainer_for(twice, data), 13, 2), **quiet)
    state, _ = checkpoint.load(tmp_path / "twice" / "checkpoint.npz")
    assert int(state["trainer.step"]) == 10   # the epoch's checkpoint, not the half-stepped state
    train.run(twice, data, resume=True, **quiet)
    assert_same_folder(tmp_path / "whole", tmp_path / "twice")


def interrupt_evaluation(trainer):
    """Make ``trainer``'s first evaluation raise KeyboardInterrupt (Ctrl-C outside a step interrupts at once)."""
    inner = trainer.accuracy
    calls = []

    def accuracy(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return inner(*args, **kwargs)
    trainer.accuracy = accuracy
    return trainer


@pytest.mark.parametrize("where", ["before its first evaluation", "during its first evaluation"])
def test_convnet_stopped_and_resumed_ends_as_an_uninterrupted_run(tmp_path, where):
    data = random_images(0)
    quiet = dict(progress=False, log=lambda *a: None)

    def config(name):
        return train_cnn.CNNConfig(batch_size=8, max_steps=5, eval_freq=3, dtype="float64", out=str(tmp_path / name))
    train_cnn.run(config("whole"), data, **quiet)
    cfg = config("stopped")
    trainer = train_cnn.trainer_for(cfg, data)
    stopped = stop_at(trainer, 2) if where.startswith("before") else interrupt_evaluation(trainer)
    with pytest.raises(Stopped, match=f"stopped after step {2 if where.startswith('before') else 3}"):
        train_cnn.run(cfg, data, trainer=stopped, **quiet)
    left = {p.name for p in (tmp_path / "stopped").iterdir()}
    assert left == {"checkpoint.npz", "metrics.json"}   # no evaluation yet: no curve to plot
    assert json.loads((tmp_path / "stopped" / "metrics.json").read_text())["evaluations"] == []
    train_cnn.run(cfg, data, resume=True, **quiet)
    assert_same_folder(tmp_path / "whole", tmp_path / "stopped")
    state, _ = checkpoint.load(tmp_path / "stopped" / "checkpoint.npz")
    assert int(state["optimizer.t"]) == 5   # Adam's step count came through the stop


def cli(module, *args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)   # a guard against a hang, not a speed test (the suite runs on every core)


@pytest.mark.parametrize("module", ["runtime.train", "runtime.train_cnn"])
def test_an_output_path_that_is_a_file_is_refused_in_one_line(module, tmp_path):
    (tmp_path / "file").write_text("mine")
    for out in ("file", "file/run"):
        r = cli(module, "--out", str(tmp_path / out), "--data_dir", str(tmp_path / "none"))
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "is a file, not a folder" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "file").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("module", ["runtime.train", "runtime.train_cnn", "runtime.train_rnn"])
def test_both_learning_rate_spellings_are_accepted(module, tmp_path):
    for flag in ("--lr", "--learning_rate"):
        r = cli(module, flag, "-1", "--out", str(tmp_path / "out"))
        assert r.returncode == 2 and "must be a positive number, got -1.0" in r.stderr, r.stderr


@pytest.mark.parametrize("module", ["runtime.train", "runtime.train_cnn", "runtime.train_rnn"])
def test_resume_of_a_folder_without_a_checkpoint_is_one_line(module, tmp_path):
    r = cli(module, "--resume", str(tmp_path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no checkpoint.npz" in r.stderr


def test_a_missing_data_folder_is_not_created(tmp_path):
    r = cli("runtime.train", "--data_dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "out").exists()


@pytest.mark.data
@pytest.mark.skipif(not (ROOT / "data" / "cifar-10-batches-py" / "test_batch").exists(),
                    reason="CIFAR-10 not in data/ (make data builds it from ../shared)")
def test_ctrl_c_leaves_the_checkpoint_metrics_and_plots_and_says_so(tmp_path):
    import signal

    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "runtime.train", "--epochs", "50", "--out", str(out),
                          "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in p.stdout:   # after the second epoch's record: mid-way through the third epoch's steps
        if line.startswith("epoch  2:"):
            break
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: MLP stopped after step ") and "--resume" in lines[0]
    assert {q.name for q in out.iterdir()} == {"metrics.json", "checkpoint.npz", "best.npz", "loss.png", "accuracy.png"}
    state, _ = checkpoint.load(out / "checkpoint.npz")
    assert int(state["trainer.step"]) >= 2 * 351 and f"after step {int(state['trainer.step'])};" in lines[0]
    assert len(json.loads((out / "metrics.json").read_text())["epochs"]) >= 2


def test_the_autograd_baseline_resumes_exactly_too(tmp_path):
    """--backend autograd (torch.nn and torch.optim.Adam behind the Trainer): its optimiser state goes through
    the checkpoint as well."""
    data = random_images(1)
    quiet = dict(progress=False, log=lambda *a: None)

    def config(name):
        return train_cnn.CNNConfig(batch_size=8, max_steps=4, eval_freq=2, backend="autograd", device="cpu",
                                   dtype="float64", out=str(tmp_path / name))
    train_cnn.run(config("whole"), data, **quiet)
    cfg = config("stopped")
    with pytest.raises(Stopped, match="stopped after step 3"):
        train_cnn.run(cfg, data, trainer=stop_at(train_cnn.trainer_for(cfg, data), 3), **quiet)
    train_cnn.run(cfg, data, resume=True, **quiet)
    assert_same_folder(tmp_path / "whole", tmp_path / "stopped")
