"""Mini-batch SGD over CIFAR-10 arrays with the generated kernels; the loop the CLIs share."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from runtime.training.data import N_CLASSES
from runtime.nets.mlp import MLP


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

    def as_dict(self) -> dict:
        return asdict(self)


class Diverged(Exception):
    """The loss became NaN or infinite."""


class Trainer:
    """Holds the data on the backend's device and runs epochs without per-step host synchronisation."""

    def __init__(self, config: Config, data, model: MLP | None = None):
        self.config = config
        self.model = model or MLP(3072, config.hidden_dims, N_CLASSES, config.use_batch_norm, config.activation,
                                  config.backend, "cpu" if config.backend == "numpy" else config.device,
                                  config.dtype, config.seed)
        b = self.backend = self.model.backend
        self.data = {name: (b.asarray(split.x), b.asarray(split.y)) for name, split in
                     (("train", data.train), ("validation", data.validation), ("test", data.test))}
        self.rng = np.random.default_rng(config.seed)
        self.run_step = self.step
        if config.capture:
            if b.name != "torch":
                raise ValueError("capture needs the torch backend")
            from runtime.kernels.capture import CapturedStep

            self.run_step = CapturedStep(self.step, self.model, (config.batch_size, data.train.x.shape[1]))

    def step(self, x, y):
        """One SGD step on a batch: (mean loss, number classified right), both left on the device."""
        b, m = self.backend, self.model
        logits = m.forward(x)
        loss = m.loss.forward(logits, y)   # integer labels, read as they are (no one-hot rows)
        m.backward(m.loss.backward(logits, y), sgd_lr=self.config.lr)  # the SGD step, fused into the kernels
        return loss, b.correct(logits, y)

    def train_epoch(self, epoch: int, progress=None) -> dict:
        """One pass over the shuffled training set; returns loss, accuracy, seconds."""
        b, m, cfg = self.backend, self.model, self.config
        x_all, y_all = self.data["train"]
        steps = len(y_all) // cfg.batch_size
        if steps == 0:
            raise ValueError(f"batch size {cfg.batch_size} exceeds the {len(y_all)} training images")
        losses, correct = b.zeros((steps,)), b.zeros(())
        start = time.perf_counter()
        m.train()
        # One shuffled order per epoch, moved to the device once; the last partial batch is dropped.
        order = b.asarray(self.rng.permutation(len(y_all)))
        for step in range(steps):
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            losses[step], hits = self.run_step(x_all[idx], y_all[idx])
            correct += hits
            if progress is not None:
                progress.update(1)
        losses = self.step_losses = b.to_numpy(losses)  # the one host synchronisation of the epoch
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            raise Diverged(f"loss is {losses[bad[0]]} at epoch {epoch}, step {bad[0] + 1}: "
                           f"lower --lr (now {cfg.lr}) or use --use_batch_norm")
        seconds = time.perf_counter() - start
        return {"train_loss": float(losses.mean()),
                "train_accuracy": float(b.to_numpy(correct)) / (steps * cfg.batch_size),
                "seconds": seconds}

    def accuracy(self, split: str, batch_size: int = 1000) -> float:
        b, m = self.backend, self.model
        x_all, y_all = self.data[split]
        m.eval()
        correct = b.zeros(())
        for start in range(0, len(y_all), batch_size):
            correct += b.correct(m.forward(x_all[start:start + batch_size]), y_all[start:start + batch_size])
        m.clear_cache()
        return float(b.to_numpy(correct)) / len(y_all)
