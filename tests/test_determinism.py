"""Derivations do not depend on Python's hash seed: the examples and every user forward derive to the same kernels
and derivations (and the same refusals) under two ``PYTHONHASHSEED`` values. The registry's modules are
tests/test_freshness.py's: derived there under the suite's own (random) seed, they must equal generated/, which
``make derive`` wrote under another.

Each seed runs in its own process (``python -m tests.fingerprint --without-registry``), both at once.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ("0", "1")


def test_derivations_are_identical_under_every_hash_seed():
    command = [sys.executable, "-m", "tests.fingerprint", "--without-registry"]
    runs = {seed: subprocess.Popen(command, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env={**os.environ, "PYTHONHASHSEED": seed}) for seed in SEEDS}
    out = {}
    for seed, p in runs.items():
        stdout, stderr = p.communicate(timeout=900)
        assert p.returncode == 0, f"PYTHONHASHSEED={seed}: {stderr[-2000:]}"
        out[seed] = dict(line.split(" ", 1) for line in stdout.splitlines())
    first = out[SEEDS[0]]
    assert len(first) > 100   # the examples and the user forwards
    for seed in SEEDS[1:]:
        differ = sorted(n for n in first.keys() | out[seed].keys() if first.get(n) != out[seed].get(n))
        assert not differ, f"PYTHONHASHSEED={SEEDS[0]} and {seed} derive these differently: {', '.join(differ)}"
