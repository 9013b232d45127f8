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
# ‖w‖ is not differentiable at w = 0: the kernel's w/‖w‖ is 0/0 there (PyTorch gives 0).
KNOWN = {("norm", "elementwise"): "the gradient of ‖w‖ at w = 0 is NaN (0/0); PyTorch gives 0"}

CASES = [(name, probe, dtype) for name in SUBJECTS for probe in ("elementwise", "scaled")
         for dtype in ("float32", "float64")]


def _param(name, probe, dtype):
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN[name, probe])] if (name, probe) in KNOWN else []
    return pytest.param(name, probe, dtype, marks=marks, id=f"{name}-{probe}-{dtype}")


@pytest.mark.parametrize("name,probe,dtype", [_param(*c) for c in CASES])
def test_finite_and_accurate_over_the_whole_range(name, probe, dtype):
    worst = getattr(full_range, probe)(SUBJECTS[name], getattr(np, dtype))
    assert worst.judged > 0
    assert not worst.failures, f"{len(worst.failures)} failures, first: " + "; ".join(worst.failures[:3])
