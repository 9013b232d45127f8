"""The course's recurrent-network task: read a digit palindrome of length T but its last digit, predict that digit.

The last digit equals the first, so the network must carry the first digit through T − 1 steps.
"""
from __future__ import annotations

import numpy as np


def palindromes(rng, count: int, length: int):
    """(digits (count, length − 1), last digits (count,)): palindromes of ``length`` digits 0–9."""
    if length < 2:
        raise ValueError(f"a palindrome to predict the last digit of has length ≥ 2, not {length}")
    half = rng.integers(0, 10, size=(count, (length + 1) // 2))
    full = np.concatenate([half, half[:, : length // 2][:, ::-1]], axis=1)
    return full[:, :-1], full[:, -1]
