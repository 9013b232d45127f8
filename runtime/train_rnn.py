"""Train a recurrent network (the derived lstm_cell or gru_cell, then a linear map) on the course's palindrome task:
read the digits of a palindrome of length T but the last, predict the last (which is the first).

    python -m runtime.train_rnn [--model_type lstm|gru] [--input_length 10] [--num_hidden 128]
                                [--batch_size 128] [--learning_rate 1e-3] [--train_steps 3000] [--eval_freq 250]
                                [--optimizer adam|sgd] [--backend numpy|torch|autograd] [--device auto|cpu|cuda]
                                [--dtype float32|float64] [--seed 42] [--out DIR]
    python -m runtime.train_rnn --resume DIR [--train_steps 6000]

Digits enter one-hot. The training set is a fixed draw of palindromes (--train_size), the test set another
(--test_size). Every --eval_freq steps (and at the last) it evaluates the test accuracy and writes into --out:
metrics.json, checkpoint.npz (to resume from), loss.png and accuracy.png. Ctrl-C stops after the step in
progress and leaves that step's checkpoint; --resume continues as if never stopped. --backend autograd trains
the same network, from the same weights on the same batches, in torch.nn (nn.LSTM / nn.GRU) with torch.optim.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runtime.kernels.backend import Backend
from runtime.nets.recurrent import RecurrentNetwork
from runtime.training import cli
from runtime.training.cli import CLIError, Parser
from runtime.training.data import Cifar10, Split
from runtime.training.optim import OPTIMIZERS
from runtime.training.outputs import Outputs, check_folder, resumed
from runtime.training.palindromes import palindromes
from runtime.training.stepping import resume_metrics, train_by_steps
from runtime.training.trainer import Trainer

DIGITS = 10
CELLS = {"lstm": "lstm_cell", "gru": "gru_cell"}


@dataclass
class RNNConfig:
    model_type: str = "lstm"
    input_length: int = 10
    num_hidden: int = 128
    batch_size: int = 128
    learning_rate: float = 1e-3
    max_steps: int = 3000
    eval_freq: int = 250
    optimizer: str = "adam"
    backend: str = "numpy"
    device: str = "auto"
    dtype: str = "float32"
    seed: int = 42
    train_size: int = 20000
    test_size: int = 2000
    out: str = ""
    world_size: int = 1     # one process (the resume check reads it)


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m runtime.train_rnn", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    d = RNNConfig()
    p.add_argument("--model_type", choices=sorted(CELLS), default=d.model_type, help="the derived cell")
    p.add_argument("--input_length", type=int, default=d.input_length, help="T: the palindrome's length")
    p.add_argument("--num_hidden", type=int, default=d.num_hidden)
    p.add_argument("--batch_size", type=int, default=d.batch_size)
    p.add_argument("--learning_rate", "--lr", dest="learning_rate", type=float, default=d.learning_rate)
    p.add_argument("--train_steps", "--max_steps", dest="max_steps", type=int, default=None,
                   help=f"training steps (default {d.max_steps})")
    p.add_argument("--eval_freq", type=int, default=d.eval_freq, help="steps between test evaluations")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=d.optimizer)
    p.add_argument("--backend", choices=["numpy", "torch", "autograd"], default=d.backend,
                   help="the generated kernels on NumPy or Torch, or autograd: the same network in torch.nn")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=d.device)
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--train_size", type=int, default=d.train_size, help="palindromes in the training set")
    p.add_argument("--test_size", type=int, default=d.test_size, help="palindromes in the test set")
    p.add_argument("--out", default="", help="output folder (default runs/rnn_<model>_T<length>_<backend>_seed<seed>)")
    p.add_argument("--resume", default="", metavar="DIR",
                   help="continue the run in DIR from its checkpoint (its settings; --train_steps may extend it)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return p


def config_from(args) -> RNNConfig:
    if args.max_steps is None:
        args.max_steps = RNNConfig.max_steps
    if not (math.isfinite(args.learning_rate) and args.learning_rate > 0):
        raise CLIError(f"--learning_rate must be a positive number, got {args.learning_rate}")
    if args.input_length < 2:
        raise CLIError(f"--input_length must be at least 2 (a digit to read and one to predict), got {args.input_length}")
    if min(args.num_hidden, args.batch_size, args.max_steps, args.eval_freq, args.train_size, args.test_size) < 1:
        raise CLIError("--num_hidden, --batch_size, --train_steps, --eval_freq, --train_size and --test_size must be "
                       "at least 1")
    if args.backend == "numpy" and args.device == "cuda":
        raise CLIError("--device cuda needs --backend torch (or autograd)")
    cfg = RNNConfig(args.model_type, args.input_length, args.num_hidden, args.batch_size, args.learning_rate,
                    args.max_steps, args.eval_freq, args.optimizer, args.backend,
                    "cpu" if args.backend == "numpy" else args.device, args.dtype, args.seed, args.train_size,
                    args.test_size, args.out)
    cfg.out = cfg.out or f"runs/rnn_{cfg.model_type}_T{cfg.input_length}_{cfg.backend}_seed{cfg.seed}"
    check_folder(cfg.out)
    return cfg


def data_for(cfg: RNNConfig) -> Cifar10:
    """Training and test palindromes (one-hot digits, the last digit as the label), drawn from the seed."""
    def split(part, count):
        x, y = palindromes(np.random.default_rng([cfg.seed, part]), count, cfg.input_length)
        return Split(np.eye(DIGITS, dtype=cfg.dtype)[x], y.astype(np.int64))

    empty = Split(np.zeros((0, cfg.input_length - 1, DIGITS), dtype=cfg.dtype), np.zeros(0, dtype=np.int64))
    return Cifar10(split(0, cfg.train_size), empty, split(1, cfg.test_size))


def trainer_for(cfg: RNNConfig, data) -> Trainer:
    from runtime.training import distributed

    reference = cfg.backend == "autograd"
    backend = "torch" if reference else cfg.backend
    device = "cpu" if backend == "numpy" else distributed.Single().device(cfg.device)
    net = RecurrentNetwork(CELLS[cfg.model_type], DIGITS, cfg.num_hidden, DIGITS,
                           backend=Backend(backend, device, cfg.dtype), seed=cfg.seed)
    if reference:
        from runtime.nets.reference import Reference
        from runtime.nets.torch_recurrent import torch_copy

        net = Reference(net, cfg.optimizer, cfg.learning_rate, copy=torch_copy)
        return Trainer(net, data, batch_size=cfg.batch_size, seed=cfg.seed, optimizer=net.optimizer, dist=net)
    return Trainer(net, data, batch_size=cfg.batch_size, seed=cfg.seed,
                   optimizer=OPTIMIZERS[cfg.optimizer](net, cfg.learning_rate))


def run(cfg: RNNConfig, progress=True, log=print, resume=False, trainer=None) -> dict:
    """Train for cfg.max_steps; evaluate, save and plot every cfg.eval_freq steps. Returns the metrics.
    ``trainer``: one made by ``trainer_for``."""
    trainer = trainer or trainer_for(cfg, data_for(cfg))
    out = Outputs(Path(cfg.out))
    metrics = resume_metrics(out, trainer, cfg) if resume else {"config": asdict(cfg), "evaluations": []}
    out.start()
    model = f"{cfg.model_type.upper()} ({CELLS[cfg.model_type]}, {cfg.num_hidden} hidden)"
    log(f"{trainer.backend}{' torch.nn + autograd' if cfg.backend == 'autograd' else ''}: {model}, palindromes of "
        f"length {cfg.input_length}, {cfg.optimizer} lr {cfg.learning_rate}, batch {cfg.batch_size}, {cfg.max_steps} "
        f"steps -> {cfg.out}{f' (resumed at step {trainer.step_count})' if resume else ''}")
    title = f"{cfg.model_type.upper()}, T = {cfg.input_length}, {cfg.optimizer} lr {cfg.learning_rate:g} ({cfg.backend})"
    return train_by_steps(cfg, trainer, out, metrics, what=cfg.model_type.upper(), desc="train_rnn", title=title,
                          progress=progress, log=log)


def main(argv=None) -> int:
    def train():
        args = parser().parse_args(argv)
        cfg = resumed(RNNConfig, args.resume, "max_steps", args.max_steps, 1) if args.resume else config_from(args)
        run(cfg, progress=args.progress, resume=bool(args.resume))

    return cli.main(train)


if __name__ == "__main__":
    sys.exit(main())
