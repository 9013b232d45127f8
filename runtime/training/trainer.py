"""The training loop every network shares (the MLP and the ConvNet): shuffled mini-batches, one optimiser step
each, batched evaluations, a stop that never cuts a step in half, and state that resumes exactly.

A step is the generated kernels' forward, the loss kernel, the backward, then the update: an optimiser over the
gradients (Adam, SGD), or plain SGD fused into the backward kernels (``sgd_lr``: each kernel adds −lr·gradient
straight into its parameter). Data-parallel (``dist``): each rank steps on its own slice of the global batch and
the gradients are averaged across processes before the update (runtime/training/distributed.py).

The data order depends only on the seed and the step: epoch ``e`` visits the training set in the permutation drawn
by ``default_rng([seed, e])``, so a run resumed at step ``n`` sees the batches an uninterrupted run would.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from runtime.training.data import Cifar10
from runtime.training.distributed import Single


class Diverged(Exception):
    """The loss became NaN or infinite."""


@dataclass
class Window:
    """Losses and hits since the last report, kept on the device (one host synchronisation per report)."""

    parts: list                  # device arrays of per-step losses
    correct: object              # device scalar
    carried: np.ndarray          # per-step losses from before a resume (host, float64)
    correct_carried: float = 0.0
    steps: int = 0

    def losses(self, backend) -> np.ndarray:
        now = [backend.to_numpy(p).astype(np.float64) for p in self.parts]
        return np.concatenate([self.carried, *now])


class Trainer:
    """Runs training steps of ``net`` over ``data`` and evaluates it; ``state_dict`` holds everything needed to
    continue (parameters, running statistics, optimiser state, step, the current report window)."""

    def __init__(self, net, data: Cifar10, *, batch_size: int, seed: int, optimizer=None, sgd_lr=None,
                 image_shape=None, capture=False, dist=None):
        if (optimizer is None) == (sgd_lr is None):
            raise ValueError("give either an optimiser or a fused SGD learning rate")
        self.net, self.optimizer, self.sgd_lr = net, optimizer, sgd_lr
        self.dist = dist or Single()
        b = self.backend = net.backend
        self.data = {name: (b.asarray(split.x), b.asarray(split.y)) for name, split in
                     (("train", data.train), ("validation", data.validation), ("test", data.test))}
        self.n_train = len(data.train.y)
        if batch_size > self.n_train:
            raise ValueError(f"batch size {batch_size} exceeds the {self.n_train} training images")
        if batch_size % self.dist.world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by the {self.dist.world_size} processes")
        self.batch_size, self.seed = batch_size, seed
        self.per_epoch = self.n_train // batch_size  # the last partial batch of an epoch is dropped
        self.image_shape = image_shape
        self.step_count = 0
        self._order = (None, None)   # (epoch, its permutation on the device)
        self._stop = False
        self.cut_short = False       # a second Ctrl-C interrupted a step: the state is not a completed step's
        self._previous_handler = signal.default_int_handler
        self.window = self._new_window()
        self.dist.prepare(net)
        self.run_step = self.step
        if capture:
            if b.name != "torch" or optimizer is not None:
                raise ValueError("capture needs the torch backend and fused SGD")
            from runtime.kernels.capture import CapturedStep

            self.run_step = CapturedStep(self.step, net, (batch_size // self.dist.world_size,
                                                          *(image_shape or data.train.x.shape[1:])))

    # -- data ------------------------------------------------------------------------------------
    def images(self, x):
        """Flat rows as the network's input (N, C, H, W) for a ConvNet, as they are for an MLP (no copy)."""
        return x if self.image_shape is None else x.reshape((x.shape[0], *self.image_shape))

    @property
    def epoch(self) -> int:
        """The epoch the next step belongs to (1-based)."""
        return self.step_count // self.per_epoch + 1

    def batch(self, step: int):
        """This rank's slice of the global batch of ``step`` (0-based)."""
        epoch, k = divmod(step, self.per_epoch)
        if self._order[0] != epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n_train)
            self._order = (epoch, self.backend.asarray(order))  # moved to the device once per epoch
        part = self.batch_size // self.dist.world_size
        start = k * self.batch_size + self.dist.rank * part
        idx = self._order[1][start:start + part]
        x_all, y_all = self.data["train"]
        return self.images(x_all[idx]), y_all[idx]

    # -- training --------------------------------------------------------------------------------
    def step(self, x, y):
        """One update on a batch: (mean loss, number classified right), both left on the device."""
        logits, loss = self.dist.forward_backward(self.net, x, y, self.sgd_lr)
        if self.optimizer is not None:
            self.optimizer.step()
        return loss, self.backend.correct(logits, y)

    def _new_window(self) -> Window:
        return Window([], self.backend.zeros(()), np.zeros(0))

    def train(self, steps: int, progress=None) -> None:
        """``steps`` more steps (fewer if a stop was requested: then KeyboardInterrupt, raised between steps)."""
        b, w = self.backend, self.window
        self.net.train()
        losses, done = b.zeros((steps,)), 0   # copied out at once: a captured step returns the same arrays
        try:
            for done in range(steps + 1):
                if self.dist.stop_requested(self._stop):
                    raise KeyboardInterrupt
                if done == steps:
                    break
                loss, hits = self.run_step(*self.batch(self.step_count))
                losses[done] = loss
                w.correct = w.correct + hits
                w.steps += 1
                self.step_count += 1
                if progress is not None:
                    progress.update(1)
        finally:
            w.parts.append(losses[:done])

    def report(self, where: str) -> dict:
        """The mean loss and training accuracy of the steps since the last report, over every process's slice of
        the batches; starts a new window. Raises Diverged, naming the step, if a loss is not finite."""
        b, w = self.backend, self.window
        # Per-step losses and the hit count summed over the processes (each holds its slice's mean loss).
        summed = self.dist.all_sum(np.append(w.losses(b), w.correct_carried + float(b.to_numpy(w.correct))))
        losses, correct = summed[:-1] / self.dist.world_size, summed[-1]
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            raise Diverged(f"loss is {losses[bad[0]]} at {where}, step {self.step_count - w.steps + bad[0] + 1}")
        steps = max(w.steps, 1)
        out = {"train_loss": float(losses.sum()) / steps, "train_accuracy": correct / (steps * self.batch_size)}
        self.window = self._new_window()
        return out

    def accuracy(self, split: str, batch_size: int = 500, progress=None) -> float:
        """The fraction of ``split`` classified right, in batches. Every process evaluates its own model on all
        of it (with per-process batch-norm statistics the models differ; rank 0's is the one reported). One
        process stops between batches when asked (the training state is untouched); several stop at a step."""
        b, net = self.backend, self.net
        x_all, y_all = self.data[split]
        net.eval()
        correct = b.zeros(())
        for start in range(0, len(y_all), batch_size):
            if self._stop and self.dist.world_size == 1:
                raise KeyboardInterrupt
            end = min(start + batch_size, len(y_all))
            correct = correct + b.correct(net.forward(self.images(x_all[start:end])), y_all[start:end])
            if progress is not None:
                progress.update(end - start)
        net.clear_cache()
        net.train()
        return float(b.to_numpy(correct)) / len(y_all)

    # -- stopping and resuming -------------------------------------------------------------------
    def request_stop(self):
        """Stop before the next step (what Ctrl-C does): the state stays that of the last completed step."""
        self._stop = True

    @contextmanager
    def interrupts_between_steps(self):
        """Ctrl-C asks for a stop, taken between steps (and between evaluation batches): the state stays a
        completed step's, and what is being recorded or written finishes first. A second Ctrl-C interrupts at
        once; if it cuts a step short, ``cut_short`` says so (that state is not saved as a checkpoint)."""
        try:
            previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_interrupt)
        except ValueError:  # not the main thread: signals stay as they are
            yield
            return
        self._previous_handler = previous
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _on_interrupt(self, signum, frame):
        if self._stop:   # the second: at once
            signal.signal(signal.SIGINT, self._previous_handler)
            self.cut_short = True
            raise KeyboardInterrupt
        self.request_stop()

    def state_dict(self) -> dict:
        """Host arrays: the network's (``<layer>.<name>``), the optimiser's (``optimizer.*``), the step and the
        report window so far (``trainer.*``)."""
        b, w = self.backend, self.window
        state = dict(self.net.state_dict())
        if self.optimizer is not None:
            state.update({f"optimizer.{k}": v for k, v in self.optimizer.state_dict().items()})
        state["trainer.step"] = np.array(self.step_count)
        state["trainer.losses"] = w.losses(b)
        state["trainer.correct"] = np.array(w.correct_carried + float(b.to_numpy(w.correct)))
        return state

    def load_state_dict(self, state: dict) -> None:
        net = {k: v for k, v in state.items() if not k.startswith(("optimizer.", "trainer."))}
        self.net.load_state_dict(net)
        if self.optimizer is not None:
            self.optimizer.load_state_dict({k[len("optimizer."):]: v for k, v in state.items()
                                            if k.startswith("optimizer.")})
        self.step_count = int(state["trainer.step"])
        self.window = self._new_window()
        self.window.carried = np.asarray(state["trainer.losses"], dtype=np.float64)
        self.window.correct_carried = float(state["trainer.correct"])
        self.window.steps = len(self.window.carried)

