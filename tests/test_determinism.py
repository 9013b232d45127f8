"""Derivations do not depend on Python's hash seed: the registry, the examples and every user forward derive to
the same kernels and derivations (and the same refusals) under two ``PYTHONHASHSEED`` values (and tests/test_freshness.py
derives the registry again under the suite's own random seed against generated/, written under another).

Each seed runs in its own process (``python -m tests.fingerprint``), both at once.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ("0", "1")


def test_derivations_are_identical_under_every_hash_seed():
    runs = {seed: subprocess.Popen([sys.executable, "-m", "tests.fingerprint"], cwd=ROOT, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env={**os.environ, "PYTHONHASHSEED": seed}) for seed in SEEDS}
    out = {}
    for seed, p in runs.items():
        stdout, stderr = p.communicate(timeout=900)
        assert p.returncode == 0, f"PYTHONHASHSEED={seed}: {stderr[-2000:]}"
        out[seed] = dict(line.split(" ", 1) for line in stdout.splitlines())
    first = out[SEEDS[0]]
    assert len(first) > 60
    for seed in SEEDS[1:]:
        differ = sorted(n for n in first.keys() | out[seed].keys() if first.get(n) != out[seed].get(n))
        assert not differ, f"PYTHONHASHSEED={SEEDS[0]} and {seed} derive these differently: {', '.join(differ)}"
