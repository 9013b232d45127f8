"""Seconds per training epoch: the generated runtimes against a plain PyTorch autograd baseline.

    python -m runtime.bench [--epochs 3] [--device auto|cpu|cuda] [--hidden_dims 128] [--data_dir data/]

All contenders run in this one process on the same data, batch size, learning
rate and dtype (float32). Each runs one warm-up epoch, then ``--epochs`` timed
epochs; the median is reported with the ratios against the baseline.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from runtime.data import DataError, N_CLASSES, load
from runtime.training import Config, Trainer


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def baseline_epochs(data, cfg: Config, device, epochs: int) -> list:
    """nn.Sequential + autograd + torch.optim.SGD, data on the device, no per-step host synchronisation."""
    import torch
    from torch import nn

    torch.manual_seed(cfg.seed)
    act = {"elu": nn.ELU, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[cfg.activation]
    layers, sizes = [], [3072, *cfg.hidden_dims]
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b)] + ([nn.BatchNorm1d(b)] if cfg.use_batch_norm else []) + [act()]
    model = nn.Sequential(*layers, nn.Linear(sizes[-1], N_CLASSES)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    loss_fn = nn.CrossEntropyLoss()
    x_all = torch.as_tensor(data.train.x, device=device)
    y_all = torch.as_tensor(data.train.y, device=device)
    rng = np.random.default_rng(cfg.seed)
    steps = len(y_all) // cfg.batch_size
    times = []
    for _ in range(epochs + 1):
        _sync(device)
        start = time.perf_counter()
        order = torch.as_tensor(rng.permutation(len(y_all)), device=device)
        losses = torch.zeros(steps, device=device)
        for step in range(steps):
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            loss = loss_fn(model(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses[step] = loss.detach()
        losses.cpu()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times[1:]


def generated_epochs(data, cfg: Config, epochs: int) -> list:
    trainer = Trainer(cfg, data)
    times = []
    for epoch in range(epochs + 1):
        start = time.perf_counter()
        trainer.train_epoch(epoch)  # ends with its one host synchronisation
        times.append(time.perf_counter() - start)
    return times[1:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m runtime.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per contender (after one warm-up)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--hidden_dims", type=int, nargs="+", default=[128])
    p.add_argument("--data_dir", default="data/")
    p.add_argument("--skip-numpy", action="store_true", help="leave out the numpy runtime (e.g. on a GPU machine)")
    args = p.parse_args(argv)
    import torch

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    try:
        data = load(args.data_dir)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = Config(hidden_dims=args.hidden_dims)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"bench: MLP {args.hidden_dims}, batch {cfg.batch_size}, float32, {len(data.train.y)} images/epoch; "
          f"median of {args.epochs} epochs after a warm-up; torch on {device} ({name})")
    rows = {}
    if not args.skip_numpy:
        rows["generated numpy (CPU)"] = generated_epochs(data, Config(hidden_dims=args.hidden_dims), args.epochs)
    rows[f"PyTorch autograd baseline ({device.type})"] = baseline_epochs(data, cfg, device, args.epochs)
    rows[f"generated torch ({device.type})"] = generated_epochs(
        data, Config(hidden_dims=args.hidden_dims, backend="torch", device=device.type), args.epochs)
    base = statistics.median(rows[f"PyTorch autograd baseline ({device.type})"])
    print(f"{'contender':36s} {'s/epoch':>9s} {'vs baseline':>12s}")
    for label, times in rows.items():
        med = statistics.median(times)
        print(f"{label:36s} {med:9.3f} {base / med:11.2f}x")
    print("(vs baseline: baseline seconds / contender seconds; above 1 is faster than autograd)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
