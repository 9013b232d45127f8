"""What both benchmarks time with: a device synchronisation, and the seconds one call takes."""
from __future__ import annotations

import time


def sync(device):
    """Wait for a CUDA device's queued work (``device`` a torch.device, a name, or None: nothing to wait for)."""
    import torch

    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
