"""What the training command lines share: one-line errors, exit codes, and a stop that loses nothing."""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager

from runtime.training.data import DataError


class CLIError(Exception):
    """Bad command-line input; the message is one line."""


class Stopped(Exception):
    """Training stopped (Ctrl-C, divergence, a crash); the message says why and what the output folder holds."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are ``CLIError``s (one line, exit 2), not argparse's usage dump."""

    def error(self, message):
        raise CLIError(message)


@contextmanager
def stopping(save, outputs, trainer, what: str):
    """Around a training loop: on a stop (Ctrl-C, taken between steps: Trainer.interrupts_between_steps)
    ``save()`` writes the last completed step's checkpoint, the metrics so far and the plots. When a second
    Ctrl-C cut a step short, on divergence or on a crash ``save(state=False)`` writes the metrics and plots and
    keeps the last checkpoint written (the state may be half-updated or NaN). Either way the message names the
    step and what the folder holds."""
    from runtime.training.trainer import Diverged

    def keep():
        try:
            save(state=False)
        except Exception:  # noqa: BLE001 - what stopped the run, not this, is what to report
            pass

    try:
        yield
    except KeyboardInterrupt:
        if trainer.cut_short:
            keep()
            raise Stopped(f"interrupted: a second Ctrl-C cut {what}'s step {trainer.step_count + 1} short; "
                          f"{outputs.left()} (checkpoint.npz: the last one written; continue with --resume "
                          f"{outputs.out})", 130) from None
        try:
            save()
        except KeyboardInterrupt:  # a second Ctrl-C while writing: the files written are whole (atomic)
            pass
        raise Stopped(f"interrupted: {what} stopped after step {trainer.step_count}; {outputs.left()} "
                      f"(continue with --resume {outputs.out})", 130) from None
    except Diverged as e:
        keep()
        raise Stopped(f"error: training diverged: {e}; {outputs.left()} (checkpoint.npz: the last evaluation's)",
                      1) from None
    except BrokenPipeError:  # the output went to a command that stopped reading: stop as Unix tools do
        save()
        raise
    except Exception as e:  # a crash: say what is kept, then the traceback (a bug to report)
        keep()
        print(f"error: {what} crashed after step {trainer.step_count}: {type(e).__name__}: {e}; {outputs.left()} "
              "(checkpoint.npz: the last evaluation's)", file=sys.stderr)
        raise


def main(train) -> int:
    """Run ``train()``: 0 when it finishes, 2 for bad input or data, 1 when training diverged, 130 on Ctrl-C."""
    try:
        train()
    except (CLIError, DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Stopped as e:
        print(str(e), file=sys.stderr)
        return e.code
    except KeyboardInterrupt:  # before training started: nothing was written
        print("interrupted before training started: nothing written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output was piped into a command that stopped reading (the state is saved)
        try:
            sys.stdout = None  # nothing more to flush into the closed pipe at exit
        finally:
            return 141
    return 0
