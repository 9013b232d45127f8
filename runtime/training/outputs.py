"""A training run's folder: metrics.json, checkpoint.npz (the state to resume from), plots; rank 0 alone writes.

Each file is written atomically (a stop never leaves half of one). ``left()`` says what the folder holds, for
the line a stopped run prints.
"""
from __future__ import annotations

import json
from pathlib import Path

from runtime.training import checkpoint
from runtime.training.cli import CLIError

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.json"


def check_folder(out: str | Path) -> Path:
    """The output folder, refused in one line if it cannot be one (an existing file, or under one). Nothing is
    created here: the folder is made when training starts."""
    out = Path(out)
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            raise CLIError(f"--out {out}: {p} is a file, not a folder")
    return out


class Outputs:
    def __init__(self, out: Path, writer: bool = True):
        self.out, self.writer = Path(out), writer

    def start(self) -> None:
        if self.writer:
            self.out.mkdir(parents=True, exist_ok=True)

    def save(self, state: dict, config: dict, name: str = CHECKPOINT) -> None:
        if self.writer:
            checkpoint.save(self.out / name, state, config)

    def metrics(self, metrics: dict) -> None:
        if self.writer:
            checkpoint.write_json(self.out / METRICS, metrics)

    def plot(self, draw) -> None:
        """``draw(out)`` writes the plots (rank 0 only)."""
        if self.writer:
            draw(self.out)

    def resume(self) -> tuple[dict, dict, dict]:
        """(state, config, metrics) of the run in this folder, or a one-line CLIError."""
        path = self.out / CHECKPOINT
        if not path.is_file() or not (self.out / METRICS).is_file():
            raise CLIError(f"--resume {self.out}: no {CHECKPOINT} and {METRICS} there to resume from")
        state, config = checkpoint.load(path)
        if "trainer.step" not in state:
            raise CLIError(f"--resume {self.out}: {CHECKPOINT} holds a model but no training state "
                           "(written by an older version)")
        return state, config, json.loads((self.out / METRICS).read_text())

    def load(self, name: str) -> dict:
        """The arrays of ``name`` in the folder (a model saved beside the checkpoint)."""
        path = self.out / name
        if not path.is_file():
            raise CLIError(f"--resume {self.out}: {name} is missing")
        return checkpoint.load(path)[0]

    def left(self) -> str:
        """What the folder holds now, for the line a stopped run prints."""
        if not self.writer:
            return "rank 0 writes the outputs"
        if not self.out.is_dir():
            return f"nothing written ({self.out} not created)"
        names = sorted(p.name for p in self.out.iterdir() if not p.name.endswith(".tmp"))
        return f"{self.out} holds {', '.join(names) if names else 'nothing'}"


def resumed(config_class, folder: str, extend: str, value, world_size: int):
    """The settings (a ``config_class``) the run in ``--resume folder`` was started with, from its checkpoint,
    with the field ``extend`` (epochs, max_steps) set to ``value`` when given; refused in one line when there is
    nothing to resume or the number of processes differs."""
    path = check_folder(folder) / CHECKPOINT
    if not path.is_file():
        raise CLIError(f"--resume {folder}: no {CHECKPOINT} there to resume from")
    saved = checkpoint.load(path)[1]
    cfg = config_class(**{k: v for k, v in saved.items() if k in config_class.__dataclass_fields__})
    cfg.out = folder
    if value is not None:
        setattr(cfg, extend, value)
    if cfg.world_size != world_size:
        raise CLIError(f"--resume {folder}: the run used {cfg.world_size} processes, this one {world_size}")
    return cfg
