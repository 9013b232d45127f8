"""What the training command lines share: one-line errors, exit codes, an interrupt that loses nothing."""
from __future__ import annotations

import argparse
import sys

from runtime.training.data import DataError
from runtime.training.trainer import Diverged


class CLIError(Exception):
    """Bad command-line input; the message is one line."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are ``CLIError``s (one line, exit 2), not argparse's usage dump."""

    def error(self, message):
        raise CLIError(message)


def main(train, interrupted: str) -> int:
    """Run ``train()``: 0 when it finishes, 2 for bad input or data, 1 when training diverged, 130 on Ctrl-C."""
    try:
        train()
    except (CLIError, DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Diverged as e:
        print(f"error: training diverged: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: {interrupted}", file=sys.stderr)
        return 130
    return 0
