"""Train the course's ConvNet (a small VGG) on CIFAR-10 with the generated conv, pool and batch-norm kernels.

    python -m runtime.train_cnn [--learning_rate 1e-4] [--batch_size 32] [--max_steps 5000] [--eval_freq 500]
                                [--data_dir data/] [--optimizer adam|sgd] [--backend numpy|torch|autograd]
                                [--device auto|cpu|cuda] [--dtype float32|float64] [--seed 42] [--out DIR]
    python -m runtime.train_cnn --resume DIR [--max_steps 10000]
    torchrun --nproc_per_node 2 -m runtime.train_cnn --backend torch ...

Every --eval_freq steps (and at the last) it evaluates the test accuracy and
writes into --out: metrics.json (the config, and per evaluation the step, the
mean training loss since the previous one, the test accuracy and the seconds
so far), checkpoint.npz (the state to resume from, written atomically),
loss.png and accuracy.png. Ctrl-C stops after the step in progress and leaves
that step's checkpoint; --resume continues as if never stopped. Under torchrun
each process trains on its slice of every batch and rank 0 alone writes.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from runtime.nets.convnet import ConvNet
from runtime.training import cli, distributed
from runtime.training.cli import CLIError, Parser
from runtime.training.data import N_CLASSES, load
from runtime.training.optim import OPTIMIZERS
from runtime.training.outputs import Outputs, check_folder, resumed
from runtime.training.stepping import resume_metrics, train_by_steps
from runtime.training.trainer import Trainer

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
    world_size: int = 1     # processes under torchrun


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m runtime.train_cnn", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    d = CNNConfig()
    p.add_argument("--learning_rate", "--lr", dest="learning_rate", type=float, default=d.learning_rate)
    p.add_argument("--batch_size", type=int, default=d.batch_size)
    p.add_argument("--max_steps", type=int, default=None, help=f"training steps (default {d.max_steps})")
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
    p.add_argument("--resume", default="", metavar="DIR",
                   help="continue the run in DIR from its checkpoint (its settings; --max_steps may extend it)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return p


def config_from(args, world_size: int = 1) -> CNNConfig:
    if args.max_steps is None:
        args.max_steps = CNNConfig.max_steps
    if not (math.isfinite(args.learning_rate) and args.learning_rate > 0):
        raise CLIError(f"--learning_rate must be a positive number, got {args.learning_rate}")
    if min(args.batch_size, args.max_steps, args.eval_freq) < 1:
        raise CLIError("--batch_size, --max_steps and --eval_freq must be at least 1")
    if args.backend == "numpy" and args.device == "cuda":
        raise CLIError("--device cuda needs --backend torch (or autograd)")
    if world_size > 1 and args.backend != "torch":
        raise CLIError("torchrun needs --backend torch")
    cfg = CNNConfig(args.learning_rate, args.batch_size, args.max_steps, args.eval_freq, args.data_dir,
                    args.optimizer, args.backend, "cpu" if args.backend == "numpy" else args.device,
                    args.dtype, args.seed, args.out, world_size)
    cfg.out = cfg.out or f"runs/cnn_{cfg.backend}_{cfg.optimizer}_seed{cfg.seed}"
    check_folder(cfg.out)
    return cfg


def resumed_config(args, world_size: int) -> CNNConfig:
    """The settings of the run in ``--resume DIR``, with ``--max_steps`` if given."""
    return resumed(CNNConfig, args.resume, "max_steps", args.max_steps, world_size)


def trainer_for(cfg: CNNConfig, data, dist=None) -> Trainer:
    dist = dist or distributed.Single()
    reference = cfg.backend == "autograd"
    device = "cpu" if cfg.backend == "numpy" else dist.device(cfg.device)
    net = ConvNet(n_classes=N_CLASSES, backend="torch" if reference else cfg.backend, device=device,
                  dtype=cfg.dtype, seed=cfg.seed)
    if reference:
        if dist.world_size > 1:
            raise CLIError("torchrun needs --backend torch")
        from runtime.nets.reference import Reference

        net = Reference(net, cfg.optimizer, cfg.learning_rate)
        return Trainer(net, data, batch_size=cfg.batch_size, seed=cfg.seed, optimizer=net.optimizer,
                       image_shape=IMAGE, dist=net)
    return Trainer(net, data, batch_size=cfg.batch_size, seed=cfg.seed, image_shape=IMAGE, dist=dist,
                   optimizer=OPTIMIZERS[cfg.optimizer](net, cfg.learning_rate))


def run(cfg: CNNConfig, data=None, progress=True, log=print, resume=False, dist=None, trainer=None) -> dict:
    """Train for cfg.max_steps; evaluate, save and plot every cfg.eval_freq steps. Returns the metrics.

    ``resume``: continue the run in ``cfg.out`` from its checkpoint. ``trainer``: one made by ``trainer_for``."""
    dist = dist or distributed.Single()
    data = data if data is not None else load(cfg.data_dir, recipe=ConvNet.DATA_RECIPE)
    trainer = trainer or trainer_for(cfg, data, dist)
    out = Outputs(Path(cfg.out), writer=dist.rank == 0)
    metrics = resume_metrics(out, trainer, cfg) if resume else {"config": asdict(cfg), "evaluations": []}
    out.start()
    b = trainer.backend
    log(f"{b}{' torch.nn + autograd' if cfg.backend == 'autograd' else ''}: ConvNet (small VGG), {cfg.optimizer} lr "
        f"{cfg.learning_rate}, batch {cfg.batch_size}, {cfg.max_steps} steps; {len(data.train.y)} training images"
        f"{f', {dist.world_size} processes' if dist.world_size > 1 else ''} -> {cfg.out}"
        f"{f' (resumed at step {trainer.step_count})' if resume else ''}")
    title = f"ConvNet, {cfg.optimizer} lr {cfg.learning_rate:g} ({cfg.backend}, {b.device or 'cpu'})"
    return train_by_steps(cfg, trainer, out, metrics, what="ConvNet", desc="train_cnn", title=title,
                          progress=progress, dist=dist, log=log)


def main(argv=None) -> int:
    def train():
        args = parser().parse_args(argv)
        with distributed.session() as dist:
            cfg = resumed_config(args, dist.world_size) if args.resume else config_from(args, dist.world_size)
            run(cfg, progress=args.progress, resume=bool(args.resume), dist=dist,
                log=print if dist.rank == 0 else (lambda *a: None))

    return cli.main(train)


if __name__ == "__main__":
    sys.exit(main())
