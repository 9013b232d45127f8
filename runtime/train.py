"""Train the MLP on CIFAR-10 with the generated kernels.

    python -m runtime.train [--hidden_dims 128 ...] [--lr 0.1] [--batch_size 128] [--epochs 10]
                            [--seed 42] [--data_dir data/] [--use_batch_norm] [--activation elu|relu]
                            [--backend numpy|torch] [--device auto|cpu|cuda] [--out runs/<name>]
    python -m runtime.train --resume runs/<name> [--epochs 20]
    torchrun --nproc_per_node 2 -m runtime.train --backend torch ...

After every epoch it writes into --out: metrics.json, checkpoint.npz (the state
to resume from), best.npz (the best-validation model), loss.png and
accuracy.png; at the end it prints the test accuracy of the best-validation
model. Ctrl-C stops after the step in progress and leaves that step's
checkpoint; --resume continues as if never stopped. Under torchrun each process
trains on its slice of every batch (gloo on CPUs, NCCL on GPUs) and rank 0
alone writes.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from dataclasses import asdict, dataclass, field

from runtime.nets.mlp import MLP, ACTIVATIONS
from runtime.training import cli, distributed, plots
from runtime.training.cli import CLIError, Parser
from runtime.training.data import N_CLASSES, load
from runtime.training.optim import SGD
from runtime.training.outputs import Outputs, check_folder, resumed
from runtime.training.trainer import Trainer


@dataclass
class Config:
    hidden_dims: list = field(default_factory=lambda: [128])
    lr: float = 0.1
    batch_size: int = 128
    epochs: int = 10
    seed: int = 42
    data_dir: str = "data/"
    use_batch_norm: bool = False
    activation: str = "elu"
    backend: str = "numpy"
    device: str = "auto"
    dtype: str = "float32"
    out: str = ""
    capture: bool = False   # torch: record the training step once and replay it (a CUDA graph on a GPU)
    world_size: int = 1     # processes under torchrun

    def as_dict(self) -> dict:
        return asdict(self)


def parser(description=__doc__) -> argparse.ArgumentParser:
    p = Parser(prog="python -m runtime.train", description=description,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Config()
    p.add_argument("--hidden_dims", type=int, nargs="+", default=d.hidden_dims, help="hidden layer sizes")
    p.add_argument("--lr", "--learning_rate", dest="lr", type=float, default=d.lr, help="SGD learning rate")
    p.add_argument("--batch_size", type=int, default=d.batch_size)
    p.add_argument("--epochs", type=int, default=None, help=f"passes over the training set (default {d.epochs})")
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
    p.add_argument("--resume", default="", metavar="DIR",
                   help="continue the run in DIR from its checkpoint (its settings; --epochs may extend it)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return p


def config_from(args, world_size: int = 1) -> Config:
    if args.epochs is None:
        args.epochs = Config.epochs
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
    if world_size > 1 and (args.backend != "torch" or args.capture):
        raise CLIError("torchrun needs --backend torch (and no --capture)")
    device = "cpu" if args.backend == "numpy" else args.device
    cfg = Config(list(args.hidden_dims), args.lr, args.batch_size, args.epochs, args.seed, args.data_dir,
                 args.use_batch_norm, args.activation, args.backend, device, args.dtype, args.out, args.capture,
                 world_size)
    if not cfg.out:
        dims = "-".join(map(str, cfg.hidden_dims))
        cfg.out = f"runs/{cfg.backend}_{cfg.activation}_{dims}{'_bn' if cfg.use_batch_norm else ''}_seed{cfg.seed}"
    check_folder(cfg.out)
    return cfg


def trainer_for(cfg: Config, data, dist=None) -> Trainer:
    """The MLP and its trainer: SGD fused into the kernels on one process; on several, gradients averaged
    before the update."""
    dist = dist or distributed.Single()
    net = MLP(3072, cfg.hidden_dims, N_CLASSES, cfg.use_batch_norm, cfg.activation, cfg.backend,
              dist.device(cfg.device) if cfg.backend == "torch" else "cpu", cfg.dtype, cfg.seed)
    fused = dist.world_size == 1
    return Trainer(net, data, batch_size=cfg.batch_size, seed=cfg.seed, sgd_lr=cfg.lr if fused else None,
                   optimizer=None if fused else SGD(net, cfg.lr), capture=cfg.capture, dist=dist)


def _draw(metrics, cfg):
    title = f"MLP {cfg.hidden_dims}, {cfg.activation}{' + BN' if cfg.use_batch_norm else ''} ({cfg.backend})"

    def draw(out):
        if metrics["epochs"]:
            plots.loss_curve(metrics["epochs"], out / "loss.png", title)
            plots.accuracy_curves(metrics["epochs"], out / "accuracy.png", title)
    return draw


def run(cfg: Config, data=None, progress=True, log=print, resume=False, dist=None, trainer=None) -> dict:
    """Train, keep the best-validation model, test it once; write every output. Returns the metrics.

    ``resume``: continue the run in ``cfg.out`` from its checkpoint. ``trainer``: one made by ``trainer_for``
    (tests use it to stop a run at a chosen step)."""
    from tqdm import tqdm

    dist = dist or distributed.Single()
    data = data if data is not None else load(cfg.data_dir)
    trainer = trainer or trainer_for(cfg, data, dist)
    out = Outputs(Path(cfg.out), writer=dist.rank == 0)
    metrics = {"config": cfg.as_dict(), "epochs": [], "best_epoch": None, "test_accuracy": None}
    if resume:
        state, _, metrics = out.resume()
        trainer.load_state_dict(state)
        metrics["config"]["epochs"] = cfg.epochs
        metrics["test_accuracy"] = None
        # Records past the checkpoint (written after it, by a run that then failed to save) are made again.
        metrics["epochs"] = [e for e in metrics["epochs"] if e["epoch"] * trainer.per_epoch <= trainer.step_count]
        if metrics["best_epoch"] not in [e["epoch"] for e in metrics["epochs"]]:
            metrics["best_epoch"] = None
    out.start()
    total, per_epoch = cfg.epochs * trainer.per_epoch, trainer.per_epoch
    log(f"{trainer.backend}: hidden {cfg.hidden_dims}, {cfg.activation}{', batch norm' if cfg.use_batch_norm else ''}; "
        f"{len(data.train.y)} training images{f', {dist.world_size} processes' if dist.world_size > 1 else ''} -> "
        f"{cfg.out}{f' (resumed at step {trainer.step_count})' if resume else ''}")
    draw = _draw(metrics, cfg)

    def save(state=True):
        if state:
            out.save(trainer.state_dict(), cfg.as_dict())
        out.metrics(metrics)
        out.plot(draw)

    best = max((e["val_accuracy"] for e in metrics["epochs"]), default=-1.0)
    best_state = out.load("best.npz") if resume and metrics["best_epoch"] else None
    start = time.perf_counter()
    with trainer.interrupts_between_steps(), cli.stopping(save, out, trainer, "MLP"):
        while True:
            # An epoch's record is made at its last step; one a stop interrupted is made first on resuming.
            if trainer.window.steps and trainer.step_count % per_epoch == 0:
                epoch = trainer.step_count // per_epoch
                accuracy = trainer.accuracy("validation")
                record = {"epoch": epoch, **trainer.report(f"epoch {epoch}"), "val_accuracy": accuracy,
                          "seconds": time.perf_counter() - start}
                metrics["epochs"].append(record)
                if record["val_accuracy"] > best:
                    best, metrics["best_epoch"], best_state = record["val_accuracy"], epoch, trainer.net.state_dict()
                    out.save(best_state, {**cfg.as_dict(), "epoch": epoch}, "best.npz")
                save()  # after every epoch, before saying so: nothing is lost on a stop
                log(f"epoch {epoch:2d}: loss {record['train_loss']:.4f}  train acc {record['train_accuracy']:.4f}  "
                    f"val acc {record['val_accuracy']:.4f}  ({record['seconds']:.1f} s)")
            if trainer.step_count >= total:
                break
            epoch, start = trainer.epoch, time.perf_counter()
            done = trainer.step_count - (epoch - 1) * per_epoch
            with tqdm(total=per_epoch, initial=done, desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
                      disable=not progress or dist.rank, file=sys.stderr) as bar:
                trainer.train(per_epoch - done, bar)
        final = trainer.state_dict()
        trainer.net.load_state_dict(best_state)
        try:
            metrics["test_accuracy"] = trainer.accuracy("test")
        finally:
            trainer.load_state_dict(final)   # a stop saves the last step's state, not the best model's
        out.metrics(metrics)
    log(f"test accuracy {metrics['test_accuracy']:.4f} (best validation epoch {metrics['best_epoch']})")
    return metrics


def main(argv=None) -> int:
    def train():
        args = parser().parse_args(argv)
        with distributed.session() as dist:
            if args.resume:
                cfg = resumed_config(args, dist.world_size)
            else:
                cfg = config_from(args, dist.world_size)
            run(cfg, progress=args.progress, resume=bool(args.resume), dist=dist,
                log=print if dist.rank == 0 else (lambda *a: None))

    return cli.main(train)


def resumed_config(args, world_size: int) -> Config:
    """The settings of the run in ``--resume DIR``, with ``--epochs`` if given."""
    return resumed(Config, args.resume, "epochs", args.epochs, world_size)


if __name__ == "__main__":
    sys.exit(main())
