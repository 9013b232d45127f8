"""Budgets for SymPy's expensive calls: a correct unsimplified form beats a hang.

``attempt(fn, expr, what)`` runs ``fn(expr)`` only when ``expr`` is small
enough (a size budget, counted in SymPy operations: deterministic, so
``make derive`` stays byte-identical) and stops it after a time budget (a last
resort, for the rare small expression SymPy still cannot finish). When a budget
runs out it returns None and records why in ``exhausted``, which the derivation
shows beside the form it kept.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time

import sympy as sp

# Operations (sympy.count_ops) above which a rewrite is not attempted.
DEFAULT_SIZE = 400
# Every size budget times this (a test sets 0: no rewrite at all).
SIZE_FACTOR = 1.0
# Seconds one call may take: a guard against a hang, not a budget that decides a form. A time limit that fires
# makes the result depend on the machine's load, so it sits far above the slowest rewrite measured on the registry
# and the user forwards (a simplify of 126 operations, 1.9 s on the 2-core development machine); the size budget,
# which is deterministic, is what keeps rewrites small.
DEFAULT_SECONDS = 20.0
# CPU seconds one module may take to derive and lower, in all: past them it is refused in one line (a hang is
# never the answer). CPU time, not wall time, so that the machine's load does not decide between a kernel and a
# refusal; the slowest forward measured (a max of a shifted cube) took 23 s of CPU on the 2-core machine.
MODULE_SECONDS = 45.0


class OutOfTime(Exception):
    pass


class ModuleOutOfTime(Exception):
    """A whole module ran past ``MODULE_SECONDS`` of CPU time (not an OutOfTime: no rewrite may absorb it)."""


# Notes of the budgets that ran out since the last ``collect()``: (what, why).
exhausted: list = []


def collect() -> list:
    """The notes recorded since the last call, cleared."""
    out = list(dict.fromkeys(exhausted))
    exhausted.clear()
    return out


_deadline = [None]  # the earliest pending deadline (time.monotonic()), nested calls share it


def _on_alarm(signum, frame):
    raise OutOfTime


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise OutOfTime in this (main) thread after ``seconds``; elsewhere, no limit."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    now = time.monotonic()
    outer = _deadline[0]
    deadline = now + seconds if outer is None else min(outer, now + seconds)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    _deadline[0] = deadline
    signal.setitimer(signal.ITIMER_REAL, max(deadline - now, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _deadline[0] = outer
        signal.signal(signal.SIGALRM, previous)
        if outer is not None:  # re-arm the enclosing limit
            left = outer - time.monotonic()
            if left <= 0:
                raise OutOfTime
            signal.setitimer(signal.ITIMER_REAL, left)


def _on_cpu_alarm(signum, frame):
    raise ModuleOutOfTime


@contextlib.contextmanager
def cpu_limit(seconds: float):
    """Raise ModuleOutOfTime in this (main) thread after ``seconds`` of its process's CPU time; elsewhere, none."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "ITIMER_VIRTUAL"):
        yield
        return
    previous = signal.signal(signal.SIGVTALRM, _on_cpu_alarm)
    # Again every second after the first: code that swallows an exception cannot swallow the budget.
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


def size(expr) -> int:
    return int(sp.count_ops(expr))


def attempt(fn, expr, what: str, max_size: int | None = None, seconds: float | None = None):
    """``fn(expr)`` within the budgets, or None (and a note in ``exhausted``) when one runs out.

    Budgets are read at each call, so ``SIZE_FACTOR`` tightens (or widens) all of them for a whole derivation."""
    max_size = int((DEFAULT_SIZE if max_size is None else max_size) * SIZE_FACTOR)
    seconds = DEFAULT_SECONDS if seconds is None else seconds
    n = size(expr)
    if n > max_size:
        exhausted.append((what, f"skipped: the expression has {n} operations, over the budget of {max_size}"))
        return None
    try:
        with time_limit(seconds):
            return fn(expr)
    except OutOfTime:
        if _deadline[0] is not None and time.monotonic() >= _deadline[0]:
            raise  # an enclosing attempt's time ran out: it, not this one, gives up
        exhausted.append((what, f"stopped after {seconds:g} s"))
        return None
