"""Train the MLP on CIFAR-10 with the generated kernels.

    python -m runtime.train [--hidden_dims 128 ...] [--lr 0.1] [--batch_size 128] [--epochs 10]
                            [--seed 42] [--data_dir data/] [--use_batch_norm] [--activation elu|relu]
                            [--backend numpy|torch] [--device auto|cpu|cuda] [--out runs/<name>]

Writes metrics.json, checkpoint.npz (the best-validation model), loss.png and
accuracy.png into --out, and prints the test accuracy of the best-validation model.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from runtime.training import checkpoint, cli, plots
from runtime.training.cli import CLIError, Parser
from runtime.training.data import load
from runtime.nets.mlp import ACTIVATIONS
from runtime.training.trainer import Config, Trainer


def parser(description=__doc__) -> argparse.ArgumentParser:
    p = Parser(prog="python -m runtime.train", description=description,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Config()
    p.add_argument("--hidden_dims", type=int, nargs="+", default=d.hidden_dims, help="hidden layer sizes")
    p.add_argument("--lr", type=float, default=d.lr, help="SGD learning rate")
    p.add_argument("--batch_size", type=int, default=d.batch_size)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--data_dir", default=d.data_dir, help="folder holding cifar-10-batches-py/")
    p.add_argument("--use_batch_norm", action="store_true")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default=d.activation)
    p.add_argument("--backend", choices=["numpy", "torch"], default=d.backend)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=d.device)
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype)
    p.add_argument("--capture", action="store_true",
                   help="torch backend: record the training step once and replay it (a CUDA graph on a GPU)")
    p.add_argument("--out", default="", help="output folder (default runs/<name from the settings>)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return p


def config_from(args) -> Config:
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise CLIError(f"--lr must be a positive number, got {args.lr}")
    if args.batch_size < 1 or args.epochs < 1:
        raise CLIError("--batch_size and --epochs must be at least 1")
    if any(h < 1 for h in args.hidden_dims):
        raise CLIError(f"--hidden_dims must be positive sizes, got {args.hidden_dims}")
    if args.backend == "numpy" and args.device == "cuda":
        raise CLIError("--device cuda needs --backend torch")
    if args.capture and args.backend != "torch":
        raise CLIError("--capture needs --backend torch")
    device = "cpu" if args.backend == "numpy" else args.device
    cfg = Config(list(args.hidden_dims), args.lr, args.batch_size, args.epochs, args.seed, args.data_dir,
                 args.use_batch_norm, args.activation, args.backend, device, args.dtype, args.out, args.capture)
    if not cfg.out:
        dims = "-".join(map(str, cfg.hidden_dims))
        cfg.out = f"runs/{cfg.backend}_{cfg.activation}_{dims}{'_bn' if cfg.use_batch_norm else ''}_seed{cfg.seed}"
    return cfg


def run(cfg: Config, data=None, progress=True, log=print) -> dict:
    """Train, keep the best-validation model, test it once; write every output. Returns the metrics."""
    from tqdm import tqdm

    data = data if data is not None else load(cfg.data_dir)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, data)
    log(f"{trainer.model.backend}: hidden {cfg.hidden_dims}, {cfg.activation}"
        f"{', batch norm' if cfg.use_batch_norm else ''}; {len(data.train.y)} training images -> {out}")
    metrics = {"config": cfg.as_dict(), "epochs": [], "best_epoch": None, "test_accuracy": None}
    best_val, best_state = -1.0, None
    steps = len(data.train.y) // cfg.batch_size
    for epoch in range(1, cfg.epochs + 1):
        with tqdm(total=steps, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=not progress,
                  file=sys.stderr) as bar:
            record = {"epoch": epoch, **trainer.train_epoch(epoch, bar)}
        record["val_accuracy"] = trainer.accuracy("validation")
        metrics["epochs"].append({k: record[k] for k in
                                  ("epoch", "train_loss", "train_accuracy", "val_accuracy", "seconds")})
        log(f"epoch {epoch:2d}: loss {record['train_loss']:.4f}  train acc {record['train_accuracy']:.4f}  "
            f"val acc {record['val_accuracy']:.4f}  ({record['seconds']:.1f} s)")
        if record["val_accuracy"] > best_val:
            best_val, best_state = record["val_accuracy"], trainer.model.state_dict()
            metrics["best_epoch"] = epoch
            checkpoint.save(out / "checkpoint.npz", best_state, cfg.as_dict())
        checkpoint.write_json(out / "metrics.json", metrics)  # after every epoch: nothing is lost on a stop
    trainer.model.load_state_dict(best_state)
    metrics["test_accuracy"] = trainer.accuracy("test")
    checkpoint.write_json(out / "metrics.json", metrics)
    title = f"MLP {cfg.hidden_dims}, {cfg.activation}{' + BN' if cfg.use_batch_norm else ''} ({cfg.backend})"
    plots.loss_curve(metrics["epochs"], out / "loss.png", title)
    plots.accuracy_curves(metrics["epochs"], out / "accuracy.png", title)
    log(f"test accuracy {metrics['test_accuracy']:.4f} (best validation epoch {metrics['best_epoch']})")
    return metrics


def main(argv=None) -> int:
    def train():
        args = parser().parse_args(argv)
        run(config_from(args), progress=args.progress)

    return cli.main(train, "metrics.json holds the finished epochs")


if __name__ == "__main__":
    sys.exit(main())
