"""The runtime: course-style gradient checks, data loading, CLI errors, backends, checkpoints, training."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.training import checkpoint
from runtime.kernels.backend import Backend
from runtime.training.data import DataError, load, read_batch
from runtime.nets.mlp import MLP
from runtime.nets.modules import (BatchNormModule, CrossEntropyModule, ELUModule, LinearModule, MSEModule, ReLUModule,
                             SigmoidModule, SoftMaxModule, SoftmaxCrossEntropyModule, TanhModule)
from runtime.train import Config, trainer_for
from runtime.training.trainer import Diverged
from tests.synthetic import synthetic

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
HAVE_DATA = (DATA / "cifar-10-batches-py" / "test_batch").exists()
F64 = Backend("numpy", "cpu", "float64")


def rel_error(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-12)


def numeric_grad(f, x, h=1e-5):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = f()
        x[i] = old - h
        minus = f()
        x[i] = old
        g[i] = (plus - minus) / (2 * h)
    return g


LAYERS = {
    "linear": lambda n: LinearModule(n, 4, backend=F64, rng=np.random.default_rng(0)),
    "relu": lambda n: ReLUModule(backend=F64),
    "elu": lambda n: ELUModule(alpha=0.7, backend=F64),
    "sigmoid": lambda n: SigmoidModule(backend=F64),
    "tanh": lambda n: TanhModule(backend=F64),
    "softmax": lambda n: SoftMaxModule(backend=F64),
    "batch_norm": lambda n: BatchNormModule(n, backend=F64),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_module_gradients_course_style(name):
    """Central differences, h = 1e-5, relative error ≤ 1e-5, random shapes, several trials."""
    rng = np.random.default_rng(1)
    for trial in range(3):
        S, n = int(rng.integers(2, 6)), int(rng.integers(1, 6))
        layer = LAYERS[name](n)
        x = rng.standard_normal((S, n))
        y = layer.forward(x)
        dout = rng.standard_normal(y.shape)
        dx = layer.backward(dout)
        objective = lambda: float(np.sum(dout * layer.forward(x)))
        assert rel_error(dx, numeric_grad(objective, x)) <= 1e-5
        for k, p in layer.params.items():
            assert layer.grads[k].shape == p.shape
            assert rel_error(layer.grads[k], numeric_grad(objective, p)) <= 1e-5


@pytest.mark.parametrize("loss", [CrossEntropyModule, SoftmaxCrossEntropyModule, MSEModule])
def test_loss_gradients_course_style(loss):
    rng = np.random.default_rng(2)
    for _ in range(3):
        S, C = int(rng.integers(1, 6)), int(rng.integers(2, 6))
        m = loss(backend=F64)
        x = rng.uniform(0.1, 1.0, (S, C)) if loss is CrossEntropyModule else rng.standard_normal((S, C))
        targets = [rng.standard_normal((S, C))] if loss is MSEModule else [
            rng.integers(0, C, S), rng.dirichlet(np.ones(C), S)]  # labels, then soft targets
        for y in targets:
            dx = m.backward(x, y)
            assert rel_error(dx, numeric_grad(lambda: float(m.forward(x, y)), x)) <= 1e-5


def test_batch_norm_running_statistics_follow_pytorch():
    rng = np.random.default_rng(3)
    ours = BatchNormModule(4, momentum=0.1, backend=F64)
    ref = torch.nn.BatchNorm1d(4, momentum=0.1).double()
    for _ in range(5):
        x = rng.standard_normal((8, 4)) * 3 + 1
        y = ours.forward(x)
        np.testing.assert_allclose(y, ref(torch.tensor(x)).detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.running_mean, ref.running_mean.numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.running_var, ref.running_var.numpy(), atol=1e-12)
    ours.eval(), ref.eval()
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(ours.forward(x), ref(torch.tensor(x)).detach().numpy(), atol=1e-12)


# -- data -------------------------------------------------------------------------------------

def write_batch(path: Path, n: int, rng, label_offset=0):
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in (np.arange(n) + label_offset) % 10]
    with path.open("wb") as fh:
        pickle.dump({b"batch_label": b"x", b"data": data, b"labels": labels}, fh, protocol=2)
    return data, labels


def test_loader_reads_the_official_layout(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    train = [write_batch(folder / f"data_batch_{i}", 1010, rng, i) for i in range(1, 6)]
    test = write_batch(folder / "test_batch", 20, rng)
    d = load(tmp_path, download=False)
    assert (len(d.train.y), len(d.validation.y), len(d.test.y)) == (5050 - 5000, 5000, 20)
    first = train[0][0][0].astype(np.float32).reshape(3, 1024) / 255
    expected = ((first - np.array([0.491, 0.482, 0.447])[:, None]) / np.array([0.247, 0.243, 0.262])[:, None])
    np.testing.assert_allclose(d.train.x[0], expected.reshape(-1), rtol=0, atol=1e-5)  # float32 resolution
    assert d.train.x.dtype == np.float32 and list(d.test.y) == test[1]
    np.testing.assert_array_equal(d.validation.y[-10:], train[4][1][-10:])


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_restricted_unpickler_refuses_code(tmp_path):
    bad = tmp_path / "test_batch"
    bad.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2))
    with pytest.raises(DataError, match="refusing to load"):
        read_batch(bad)
    assert not Path("pwned").exists() and not (tmp_path / "pwned").exists()


def test_corrupt_or_missing_files_give_one_line(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="missing data_batch_1"):
        load(tmp_path, download=False)
    with pytest.raises(DataError, match="not a CIFAR-10 batch"):
        read_batch(folder / "test_batch")


# -- CLI --------------------------------------------------------------------------------------

def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "runtime.train", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)   # a guard against a hang, not a speed test (the suite runs on every core)


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--lr", "0"], "--lr must be a positive number"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--hidden_dims"], "expected at least one argument"),
    (["--hidden_dims", "0"], "--hidden_dims must be positive"),
    (["--epochs", "0"], "must be at least 1"),
    (["--backend", "numpy", "--device", "cuda"], "--device cuda needs --backend torch"),
])
def test_cli_rejects_bad_input_in_one_line(args, message, tmp_path):
    r = cli(*args, "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_cli_corrupt_data_in_one_line(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for n in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        (folder / n).write_bytes(b"garbage")
    r = cli("--data_dir", str(tmp_path), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "not a CIFAR-10 batch" in r.stderr


# -- training ---------------------------------------------------------------------------------

def test_numpy_and_torch_follow_the_same_trajectory():
    """float64, same seed: per-step losses agree to 1e-8 over the first 50 steps."""
    data = synthetic()
    runs = []
    for backend in ("numpy", "torch"):
        t = trainer_for(Config(hidden_dims=[64, 32], batch_size=32, use_batch_norm=True, backend=backend,
                               device="cpu", dtype="float64"), data)
        t.train(t.per_epoch)
        runs.append(t.window.losses(t.backend))
    assert len(runs[0]) == 50
    np.testing.assert_allclose(runs[0], runs[1], rtol=0, atol=1e-8)
    assert runs[0][-1] < runs[0][0]


@pytest.mark.parametrize("use_batch_norm", [False, True])
def test_captured_step_follows_the_plain_loop(use_batch_norm):
    """capture=True: the step over fixed buffers, recorded as a CUDA graph where there is a GPU (on the CPU the
    buffers alone), gives the plain loop's losses, parameters and running statistics (float64, two epochs)."""
    import torch

    data = synthetic(n_train=800)
    runs = []
    for capture in (False, True):
        t = trainer_for(Config(hidden_dims=[64, 32], batch_size=32, use_batch_norm=use_batch_norm, backend="torch",
                               device="cuda" if torch.cuda.is_available() else "cpu", dtype="float64",
                               capture=capture), data)
        t.train(2 * t.per_epoch)
        runs.append((t.window.losses(t.backend), t.net.state_dict(), t.accuracy("validation")))
    (plain, plain_state, plain_acc), (captured, captured_state, captured_acc) = runs
    np.testing.assert_allclose(captured, plain, rtol=0, atol=1e-12)
    assert captured_state.keys() == plain_state.keys()
    for k in plain_state:
        np.testing.assert_allclose(captured_state[k], plain_state[k], rtol=0, atol=1e-12, err_msg=k)
    assert captured_acc == plain_acc and plain[-1] < plain[0]


def test_divergence_names_epoch_and_step():
    t = trainer_for(Config(hidden_dims=[32], lr=1e6, batch_size=32), synthetic())
    with pytest.raises(Diverged, match=r"epoch 1, step \d+"), np.errstate(all="ignore"):
        t.train(t.per_epoch)
        t.report("epoch 1")


def test_checkpoint_round_trip(tmp_path):
    m = MLP(3072, [16, 8], 10, use_batch_norm=True, seed=1, dtype="float64")
    x = np.random.default_rng(0).standard_normal((5, 3072))
    m.forward(x)  # updates running statistics
    m.eval()
    checkpoint.save(tmp_path / "c.npz", m.state_dict(), {"hidden_dims": [16, 8]})
    state, config = checkpoint.load(tmp_path / "c.npz")
    other = MLP(3072, [16, 8], 10, use_batch_norm=True, seed=2, dtype="float64")
    other.load_state_dict(state)
    other.eval()
    np.testing.assert_array_equal(other.forward(x), m.forward(x))
    assert config == {"hidden_dims": [16, 8]} and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="does not fit"):
        MLP(3072, [16], 10).load_state_dict(state)


@pytest.mark.data
@pytest.mark.skipif(not HAVE_DATA, reason="CIFAR-10 not in data/ (make data builds it from ../shared)")
def test_default_training_reaches_the_course_accuracy(tmp_path):
    r = cli("--out", str(tmp_path / "run"), "--no-progress")
    assert r.returncode == 0, r.stderr
    import json
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 10 and metrics["best_epoch"] in range(1, 11)
    assert metrics["test_accuracy"] >= 0.46
    assert {p.name for p in (tmp_path / "run").iterdir()} == {"metrics.json", "checkpoint.npz", "best.npz",
                                                               "loss.png", "accuracy.png"}
