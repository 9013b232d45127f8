"""Train the course's ConvNet (a small VGG) on CIFAR-10 with the generated conv, pool and batch-norm kernels.

    python -m runtime.train_cnn [--learning_rate 1e-4] [--batch_size 32] [--max_steps 5000] [--eval_freq 500]
                                [--data_dir data/] [--optimizer adam|sgd] [--backend numpy|torch]
                                [--device auto|cpu|cuda] [--dtype float32|float64] [--seed 42] [--out DIR]

Every --eval_freq steps (and at the last) it evaluates the test accuracy and
writes into --out: metrics.json (the config, and per evaluation the step, the
mean training loss since the previous one, the test accuracy and the seconds
so far), checkpoint.npz (the weights at that step, written atomically),
loss.png and accuracy.png.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runtime.training import checkpoint, cli, plots
from runtime.training.cli import CLIError, Parser
from runtime.nets.convnet import ConvNet
from runtime.training.data import N_CLASSES, load
from runtime.training.optim import OPTIMIZERS
from runtime.training.trainer import Diverged

IMAGE = (3, 32, 32)


@dataclass
class CNNConfig:
    learning_rate: float = 1e-4
    batch_size: int = 32
    max_steps: int = 5000
    eval_freq: int = 500
    data_dir: str = "data/"
    optimizer: str = "adam"
    backend: str = "numpy"
    device: str = "auto"
    dtype: str = "float32"
    seed: int = 42
    out: str = ""


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m runtime.train_cnn", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = CNNConfig()
    p.add_argument("--learning_rate", type=float, default=d.learning_rate)
    p.add_argument("--batch_size", type=int, default=d.batch_size)
    p.add_argument("--max_steps", type=int, default=d.max_steps)
    p.add_argument("--eval_freq", type=int, default=d.eval_freq, help="steps between test evaluations")
    p.add_argument("--data_dir", default=d.data_dir, help="folder holding cifar-10-batches-py/")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=d.optimizer)
    p.add_argument("--backend", choices=["numpy", "torch", "autograd"], default=d.backend,
                   help="the generated kernels on NumPy or Torch, or autograd: the same network in torch.nn "
                        "with torch.optim (the reference)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=d.device)
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", default="", help="output folder (default runs/cnn_<backend>_<optimizer>_seed<seed>)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def config_from(args) -> CNNConfig:
    if not (math.isfinite(args.learning_rate) and args.learning_rate > 0):
        raise CLIError(f"--learning_rate must be a positive number, got {args.learning_rate}")
    if min(args.batch_size, args.max_steps, args.eval_freq) < 1:
        raise CLIError("--batch_size, --max_steps and --eval_freq must be at least 1")
    if args.backend == "numpy" and args.device == "cuda":
        raise CLIError("--device cuda needs --backend torch (or autograd)")
    cfg = CNNConfig(args.learning_rate, args.batch_size, args.max_steps, args.eval_freq, args.data_dir,
                    args.optimizer, args.backend, "cpu" if args.backend == "numpy" else args.device,
                    args.dtype, args.seed, args.out)
    cfg.out = cfg.out or f"runs/cnn_{cfg.backend}_{cfg.optimizer}_seed{cfg.seed}"
    return cfg


def images(x):
    """Flat normalised rows (N, 3072) as (N, 3, 32, 32), channels first (no copy)."""
    return x.reshape((x.shape[0],) + IMAGE)


def test_accuracy(net, x_all, y_all, batch_size=500) -> float:
    b = net.backend
    net.eval()
    correct = b.zeros(())
    for start in range(0, len(y_all), batch_size):
        logits = net.forward(images(x_all[start:start + batch_size]))
        correct += b.correct(logits, y_all[start:start + batch_size])
    net.clear_cache()
    net.train()
    return float(b.to_numpy(correct)) / len(y_all)


class Reference:
    """The same network and initial weights in torch.nn, trained with autograd and torch.optim (--backend autograd)."""

    def __init__(self, net, cfg):
        import torch

        from runtime.nets.torch_convnet import torch_copy

        self.torch, self.backend = torch, net.backend
        self.model = torch_copy(net, device=net.backend.device)
        make = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[cfg.optimizer]
        self.opt = make(self.model.parameters(), lr=cfg.learning_rate)

    def step(self, x, y):
        loss = self.torch.nn.functional.cross_entropy(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def forward(self, x):
        with self.torch.no_grad():
            return self.model(x)

    def eval(self):
        self.model.eval()

    def train(self):
        self.model.train()

    def clear_cache(self):
        pass

    def state_dict(self):
        return {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}


def run(cfg: CNNConfig, data=None, progress=True, log=print) -> dict:
    """Train for cfg.max_steps; evaluate, save and plot every cfg.eval_freq steps. Returns the metrics."""
    from tqdm import tqdm

    data = data if data is not None else load(cfg.data_dir)
    reference = cfg.backend == "autograd"
    device = "cpu" if cfg.backend == "numpy" else cfg.device
    net = ConvNet(n_classes=N_CLASSES, backend="torch" if reference else cfg.backend, device=device,
                  dtype=cfg.dtype, seed=cfg.seed)
    b = net.backend
    if reference:
        net = Reference(net, cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train = b.asarray(data.train.x), b.asarray(data.train.y)
    x_test, y_test = b.asarray(data.test.x), b.asarray(data.test.y)
    if cfg.batch_size > len(y_train):
        raise ValueError(f"batch size {cfg.batch_size} exceeds the {len(y_train)} training images")
    opt = None if reference else OPTIMIZERS[cfg.optimizer](net, cfg.learning_rate)
    rng = np.random.default_rng(cfg.seed)
    per_epoch = len(y_train) // cfg.batch_size
    log(f"{b}{' torch.nn + autograd' if reference else ''}: ConvNet (small VGG), {cfg.optimizer} lr "
        f"{cfg.learning_rate}, batch {cfg.batch_size}, {cfg.max_steps} steps; {len(y_train)} training images -> {out}")
    metrics = {"config": asdict(cfg), "evaluations": []}
    title = f"ConvNet, {cfg.optimizer} lr {cfg.learning_rate:g} ({cfg.backend}, {b.device or 'cpu'})"
    losses, order, start = [], None, time.perf_counter()
    net.train()
    with tqdm(total=cfg.max_steps, desc="train_cnn", disable=not progress, file=sys.stderr) as bar:
        for step in range(1, cfg.max_steps + 1):
            k = (step - 1) % per_epoch
            if k == 0:  # a new shuffled order each epoch, moved to the device once
                order = b.asarray(rng.permutation(len(y_train)))
            idx = order[k * cfg.batch_size:(k + 1) * cfg.batch_size]
            x, y = images(x_train[idx]), y_train[idx]
            if reference:
                losses.append(net.step(x, y))
            else:
                logits = net.forward(x)
                losses.append(net.loss.forward(logits, y))
                net.backward(net.loss.backward(logits, y))
                opt.step()
            bar.update(1)
            if step % cfg.eval_freq and step != cfg.max_steps:
                continue
            window = np.array([float(b.to_numpy(v)) for v in losses])  # the host synchronisation of the window
            losses = []
            if not np.all(np.isfinite(window)):
                raise Diverged(f"loss is not finite before step {step}: lower --learning_rate (now {cfg.learning_rate})")
            record = {"step": step, "train_loss": float(window.mean()),
                      "test_accuracy": test_accuracy(net, x_test, y_test) if not reference else
                      reference_accuracy(net, x_test, y_test),
                      "seconds": time.perf_counter() - start}
            metrics["evaluations"].append(record)
            bar.write(f"step {step:5d}: loss {record['train_loss']:.4f}  test acc {record['test_accuracy']:.4f}  "
                      f"({record['seconds']:.0f} s)")
            checkpoint.save(out / "checkpoint.npz", net.state_dict(), {**asdict(cfg), "step": step})
            checkpoint.write_json(out / "metrics.json", metrics)   # after every evaluation: nothing is lost on a stop
            plots.step_curve(metrics["evaluations"], "train_loss", out / "loss.png", title, "training loss")
            plots.step_curve(metrics["evaluations"], "test_accuracy", out / "accuracy.png", title, "test accuracy")
    log(f"test accuracy {metrics['evaluations'][-1]['test_accuracy']:.4f} after {cfg.max_steps} steps "
        f"({metrics['evaluations'][-1]['seconds']:.0f} s)")
    return metrics


def reference_accuracy(ref, x_all, y_all, batch_size=500) -> float:
    ref.eval()
    correct = 0
    for start in range(0, len(y_all), batch_size):
        logits = ref.forward(images(x_all[start:start + batch_size]))
        correct += int((logits.argmax(1) == y_all[start:start + batch_size]).sum())
    ref.train()
    return correct / len(y_all)


def main(argv=None) -> int:
    def train():
        args = parser().parse_args(argv)
        run(config_from(args), progress=args.progress)

    return cli.main(train, "metrics.json and checkpoint.npz hold the last evaluation")


if __name__ == "__main__":
    sys.exit(main())
