"""The forward fuzzer at a fixed seed and a bounded count (tests/fuzzing/; ``make fuzz`` runs it at length).

Every drawn forward either derives into kernels that agree with torch.autograd through an independent
reference on both backends, or is refused in one line naming the stage: no internal error, no hang,
no wrong value. A failure names the reproducer folder (forward.py, spec.json, symptom.txt).
"""
from __future__ import annotations

from tests.fuzzing import runner

SEED = 20261203
COUNT = 12  # distinct forwards: a few seconds each to derive (twice that on a loaded machine), about a minute in all


def test_drawn_forwards_derive_right_or_are_refused(tmp_path):
    result = runner.run(COUNT, SEED, tmp_path, timeout=60, log=lambda line: None)
    counts = result["counts"]
    assert sum(counts[o] for o in runner.OUTCOMES) >= COUNT // 2  # the grammar draws distinct forwards
    bad = [(o, n, d) for o, n, d in result["kept"] if o in ("internal", "hung", "wrong")]
    assert not bad, "\n".join(f"{o} {n}: {d}  (reproducer: {tmp_path / o / n})" for o, n, d in bad)
