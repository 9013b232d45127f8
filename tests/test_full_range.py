"""Numerics over the whole floating range, for every registered module and every example.

Both probes of tests/full_range.py (an elementwise sweep from the smallest
subnormal to the largest finite value, and small arrays scaled across the
range), in float32 and float64, on the NumPy and the Torch kernels: every
result finite where the exact one is, and within 16 ulps times the condition
number of an mpmath reference. ``python -m tests.full_range`` prints the worst
error of each (the user-style forwards too).
"""
from __future__ import annotations

import numpy as np
import pytest

from tests import full_range

SUBJECTS = {s.name: s for s in full_range.subjects()}
# Known failures, by the point they happen at (a fixed one makes its test fail: remove it here).
# ‖w‖ is not differentiable at w = 0: the kernel's w/‖w‖ is 0/0 there (PyTorch gives 0).
KNOWN = {("norm", "elementwise", "float32"): (" w=0 ",), ("norm", "elementwise", "float64"): (" w=0 ",)}

CASES = [(name, probe, dtype) for name in SUBJECTS for probe in ("elementwise", "scaled")
         for dtype in ("float32", "float64")]


@pytest.mark.parametrize("name,probe,dtype", CASES, ids=["-".join(c) for c in CASES])
def test_finite_and_accurate_over_the_whole_range(name, probe, dtype):
    worst = getattr(full_range, probe)(SUBJECTS[name], getattr(np, dtype))
    assert worst.judged > 0
    failures = worst.failures
    known = KNOWN.get((name, probe, dtype), ())
    fixed = [k for k in known if not any(k in f for f in failures)]
    assert not fixed, f"the known failures at {fixed} are fixed: remove them from KNOWN"
    failures = [f for f in failures if not any(k in f for k in known)]
    assert not failures, f"{len(failures)} failures, first: " + "; ".join(failures[:3])
