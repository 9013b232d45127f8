"""Seconds per training epoch of the MLP: the generated runtimes against a hand-written NumPy MLP and PyTorch autograd.

    python -m benchmarks.mlp [--epochs 5] [--device auto|cpu|cuda] [--hidden_dims 128] [--use_batch_norm]

All contenders train the same network (same sizes, batch size, learning rate,
float32, CIFAR-10 training split) in this one process:

  generated numpy      the runtime on the generated NumPy kernels (CPU)
  generated torch      the runtime on the generated Torch kernels (CPU, and the GPU when there is one)
  hand-written numpy   benchmarks/handwritten_mlp.py, the plain NumPy MLP a student writes
  autograd             nn.Sequential + nn.CrossEntropyLoss + torch.optim.SGD, data already on the device

After one warm-up epoch each, the contenders take turns, one epoch each per
round, so a machine that slows down part-way slows every contender alike.
Ratios are taken within a round (contender seconds / baseline seconds, below
1 is faster) and their median over the rounds is printed.

The FLOP limit is the time the epoch's matrix products would take at the
machine's single-precision GEMM rate, measured each round on a large square
product (NumPy's BLAS for CPU rows, torch.matmul on the GPU for GPU rows): the
forward, every weight gradient and every input gradient but the first layer's,
which nothing needs. A contender's fraction of the limit is limit / its
seconds. The generated runtimes also count each step's correct predictions
(the epoch's training accuracy) and build one-hot targets; the other two do
neither.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from benchmarks.handwritten_mlp import HandwrittenMLP
from benchmarks.timing import seconds, sync
from runtime.training.data import DataError, N_CLASSES, load
from runtime.train import Config, trainer_for

GEMM_SIZE = 2048


def epoch_flops(sizes, images: int) -> float:
    """Multiply-adds ×2 of one epoch's matrix products: forward, dW of every layer, dX of all but the first."""
    products = [a * b for a, b in zip(sizes, sizes[1:])]
    return 2.0 * images * (2 * sum(products) + sum(products[1:]))


def sgemm_rate(device=None, n: int = GEMM_SIZE) -> float:
    """GFLOP/s of one n×n×n float32 product (best of three): NumPy's BLAS, or torch on a CUDA ``device``."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, n, n), dtype=np.float32)
    if device is not None and device.type == "cuda":
        import torch

        a, b = torch.as_tensor(a, device=device), torch.as_tensor(b, device=device)
    product = lambda: (a @ b, sync(device))
    product()
    best = min(seconds(product) for _ in range(3))
    return 2.0 * n ** 3 / best / 1e9


class Generated:
    def __init__(self, data, cfg: Config):
        self.trainer = trainer_for(cfg, data)

    def epoch(self):
        self.trainer.train(self.trainer.per_epoch)
        self.trainer.report("the benchmark")  # the epoch's one host synchronisation


class Handwritten:
    def __init__(self, data, cfg: Config):
        self.model = HandwrittenMLP([3072, *cfg.hidden_dims, N_CLASSES], cfg.use_batch_norm, cfg.seed)
        self.x, self.y, self.cfg = data.train.x, data.train.y, cfg
        self.rng = np.random.default_rng(cfg.seed)

    def epoch(self):
        bs = self.cfg.batch_size
        order = self.rng.permutation(len(self.y))
        for step in range(len(self.y) // bs):
            idx = order[step * bs:(step + 1) * bs]
            self.model.train_step(self.x[idx], self.y[idx], self.cfg.lr)


class Autograd:
    """nn.Sequential + autograd + torch.optim.SGD, data on the device, no per-step host synchronisation."""

    def __init__(self, data, cfg: Config, device):
        import torch
        from torch import nn

        torch.manual_seed(cfg.seed)
        act = {"elu": nn.ELU, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[cfg.activation]
        layers, sizes = [], [3072, *cfg.hidden_dims]
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b)] + ([nn.BatchNorm1d(b)] if cfg.use_batch_norm else []) + [act()]
        self.model = nn.Sequential(*layers, nn.Linear(sizes[-1], N_CLASSES)).to(device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr)
        self.loss_fn = nn.CrossEntropyLoss()
        self.x = torch.as_tensor(data.train.x, device=device)
        self.y = torch.as_tensor(data.train.y, device=device)
        self.rng, self.cfg, self.device, self.torch = np.random.default_rng(cfg.seed), cfg, device, torch

    def epoch(self):
        torch, bs = self.torch, self.cfg.batch_size
        steps = len(self.y) // bs
        order = torch.as_tensor(self.rng.permutation(len(self.y)), device=self.device)
        losses = torch.zeros(steps, device=self.device)
        for step in range(steps):
            idx = order[step * bs:(step + 1) * bs]
            loss = self.loss_fn(self.model(self.x[idx]), self.y[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            losses[step] = loss.detach()
        losses.cpu()
        sync(self.device)


def run(contenders: dict, rounds: int, device):
    """Seconds per epoch of each contender and the GEMM rate, round by round."""
    for c in contenders.values():
        c.epoch()
        sync(device)
    times, rates = {k: [] for k in contenders}, {"cpu": [], "cuda": []}
    for r in range(rounds):
        rates["cpu"].append(sgemm_rate())
        if device.type == "cuda":
            rates["cuda"].append(sgemm_rate(device))
        for label, c in contenders.items():
            start = time.perf_counter()
            c.epoch()
            sync(device)
            times[label].append(time.perf_counter() - start)
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in times.items()),
              file=sys.stderr)
    return times, rates


def report(times: dict, rates: dict, flops: float, baselines: list) -> list:
    """Printed lines: median and spread, ratios against each baseline, fraction of the FLOP limit
    (at the GPU's rate for a contender on the GPU)."""
    head = f"{'contender':28s} {'s/epoch':>8s} {'min–max':>13s}" + "".join(
        f" {'vs ' + b.split(' (')[0]:>20s}" for b in baselines) + f" {'FLOP limit':>11s}"
    lines = [head]
    for label, ts in times.items():
        row = f"{label:28s} {statistics.median(ts):8.3f} {min(ts):6.3f}–{max(ts):6.3f}"
        for b in baselines:
            row += f" {statistics.median(t / u for t, u in zip(ts, times[b])):19.2f}×"
        limit = [flops / (rate * 1e9) for rate in rates["cuda" if "(cuda)" in label else "cpu"]]
        row += f" {100 * statistics.median(l / t for l, t in zip(limit, ts)):10.0f}%"
        lines.append(row)
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mlp", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5, help="timed rounds, one epoch per contender each (after a warm-up)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--hidden_dims", type=int, nargs="+", default=[128])
    p.add_argument("--use_batch_norm", action="store_true")
    p.add_argument("--batch_size", type=int, default=Config.batch_size)
    p.add_argument("--data_dir", default="data/")
    p.add_argument("--skip-numpy", action="store_true", help="leave out the two NumPy contenders (e.g. on a GPU machine)")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1:
        p.error("--epochs and --batch_size must be at least 1")
    import torch

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: no CUDA device is available", file=sys.stderr)
        return 2
    try:
        data = load(args.data_dir)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = Config(hidden_dims=args.hidden_dims, use_batch_norm=args.use_batch_norm, batch_size=args.batch_size)
    images = len(data.train.y) // cfg.batch_size * cfg.batch_size
    flops = epoch_flops([3072, *cfg.hidden_dims, N_CLASSES], images)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    contenders, baselines = {}, []
    if not args.skip_numpy:
        contenders["generated numpy (cpu)"] = Generated(data, cfg)
        contenders["hand-written numpy (cpu)"] = Handwritten(data, cfg)
        baselines.append("hand-written numpy (cpu)")
    on_torch = dict(hidden_dims=cfg.hidden_dims, use_batch_norm=cfg.use_batch_norm, batch_size=cfg.batch_size,
                    backend="torch", device=device.type)
    contenders[f"generated torch ({device.type})"] = Generated(data, Config(**on_torch))
    if device.type == "cuda":  # the step recorded once as a CUDA graph and replayed (runtime/kernels/capture.py)
        contenders["generated torch, captured (cuda)"] = Generated(data, Config(**on_torch, capture=True))
    contenders[f"autograd ({device.type})"] = Autograd(data, cfg, device)
    baselines.append(f"autograd ({device.type})")
    bn = " + batch norm" if cfg.use_batch_norm else ""
    print(f"bench: MLP {cfg.hidden_dims}{bn}, {cfg.activation}, batch {cfg.batch_size}, float32, {images} images "
          f"and {flops / 1e9:.1f} GFLOP per epoch; torch on {device} ({where}); {args.epochs} rounds after a warm-up")
    times, rates = run(contenders, args.epochs, device)
    for where, label in (("cpu", "NumPy's BLAS, CPU"), ("cuda", "torch.matmul, GPU")):
        if rates[where]:
            rate = statistics.median(rates[where])
            print(f"sgemm {GEMM_SIZE}³ float32 ({label}): {rate:.0f} GFLOP/s (rounds: {min(rates[where]):.0f}–"
                  f"{max(rates[where]):.0f}) → FLOP limit {flops / rate / 1e9:.4f} s/epoch")
    for line in report(times, rates, flops, baselines):
        print(line)
    print("(vs X: contender seconds / X's seconds in the same round, median over rounds; below 1 is faster. "
          "FLOP limit: the epoch's GEMM work at that round's sgemm rate / contender seconds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
