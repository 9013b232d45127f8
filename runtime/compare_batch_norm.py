"""The course's batch-norm experiment: three depths, with and without batch norm.

    python -m runtime.compare_batch_norm [--epochs 20] [--lr 0.1] [--backend numpy|torch] [--out runs/compare_bn]

Hidden dims [128], [256, 128], [512, 256, 128]; each trained with and without
batch norm. Writes training and validation accuracy curves as separate plots,
results.json, and a table of test accuracies (results.md), printed at the end.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runtime.training import checkpoint, plots
from runtime.training.data import DataError, load
from runtime.training.cli import CLIError, Parser, Stopped
from runtime.train import Config
from runtime.train import run

DEPTHS = ([128], [256, 128], [512, 256, 128])


def main(argv=None) -> int:
    p = Parser(prog="python -m runtime.compare_batch_norm", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--data_dir", default="data/")
    p.add_argument("--out", default="runs/compare_bn")
    p.add_argument("--seed", type=int, default=42)
    try:
        args = p.parse_args(argv)
        if args.epochs < 1 or not args.lr > 0:
            raise CLIError("--epochs must be ≥ 1 and --lr positive")
        data = load(args.data_dir)
    except (CLIError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for dims in DEPTHS:
        for bn in (False, True):
            label = f"{dims} {'BN' if bn else 'no BN'}"
            cfg = Config(hidden_dims=list(dims), lr=args.lr, epochs=args.epochs, seed=args.seed,
                         use_batch_norm=bn, backend=args.backend,
                         device="cpu" if args.backend == "numpy" else args.device,
                         out=str(out / ("-".join(map(str, dims)) + ("_bn" if bn else ""))))
            print(f"== {label}")
            try:
                results[label] = run(cfg, data, progress=True, log=lambda s: print("   " + s))
            except Stopped as e:
                if e.code != 1:   # Ctrl-C: the comparison stops (each run's folder says what it holds)
                    print(str(e), file=sys.stderr)
                    return e.code
                print(f"   {e}")   # diverged: recorded, and the comparison goes on
                results[label] = {"epochs": [], "test_accuracy": None, "diverged": str(e)}
            checkpoint.write_json(out / "results.json", results)
    curves = {k: v["epochs"] for k, v in results.items() if v["epochs"]}
    plots.compare(curves, "train_accuracy", out / "train_accuracy.png",
                  f"Training accuracy (mean over batches), lr {args.lr}")
    plots.compare(curves, "val_accuracy", out / "val_accuracy.png", f"Validation accuracy, lr {args.lr}")
    lines = ["| hidden dims | test accuracy, no BN | test accuracy, BN |", "|---|---|---|"]
    for dims in DEPTHS:
        cells = []
        for bn in (False, True):
            acc = results[f"{dims} {'BN' if bn else 'no BN'}"]["test_accuracy"]
            cells.append("diverged" if acc is None else f"{acc:.4f}")
        lines.append(f"| {dims} | {cells[0]} | {cells[1]} |")
    table = "\n".join(lines) + "\n"
    (out / "results.md").write_text(table)
    print("\n" + table + f"\nplots: {out / 'train_accuracy.png'}, {out / 'val_accuracy.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
