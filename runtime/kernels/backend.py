"""NumPy or Torch arrays, one interface: what the runtime needs beyond the generated kernels.

Randomness always comes from NumPy (initial weights, shuffling), so the two
backends follow the same trajectory for the same seed; arrays are then moved
to the backend's device once.
"""
from __future__ import annotations

import numpy as np

from runtime.kernels.calling import Kernels


class Backend:
    def __init__(self, name: str = "numpy", device: str = "cpu", dtype: str = "float32"):
        if name not in ("numpy", "torch"):
            raise ValueError(f"unknown backend {name!r} (numpy or torch)")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"unknown dtype {dtype!r} (float32 or float64)")
        self.name, self.dtype_name = name, dtype
        if name == "numpy":
            if device != "cpu":
                raise ValueError("the numpy backend runs on the CPU only")
            self.device, self.dtype = None, np.dtype(dtype)
        else:
            import torch

            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            if device.startswith("cuda") and not torch.cuda.is_available():
                raise ValueError("--device cuda: no CUDA device is available")
            self.torch = torch
            self.device, self.dtype = torch.device(device), getattr(torch, dtype)

    def __repr__(self):
        return f"Backend({self.name}, {self.device or 'cpu'}, {self.dtype_name})"

    def kernels(self, module: str):
        """The generated kernels of ``module`` for this backend."""
        return Kernels(module, self.name)

    # -- arrays ------------------------------------------------------------------
    def asarray(self, a: np.ndarray):
        """A host array on the backend: floats in the backend's dtype, integers as int64."""
        a = np.asarray(a)
        if self.name == "numpy":
            return a.astype(self.dtype, copy=False) if a.dtype.kind == "f" else a
        dtype = self.dtype if a.dtype.kind == "f" else self.torch.int64
        return self.torch.as_tensor(a, device=self.device).to(dtype)

    def zeros(self, shape):
        return self.asarray(np.zeros(shape, dtype=self.dtype_name))

    def ones(self, shape):
        return self.asarray(np.ones(shape, dtype=self.dtype_name))

    def to_numpy(self, a) -> np.ndarray:
        if self.name == "numpy":
            return np.asarray(a)
        return a.detach().cpu().numpy()

    def copy(self, a):
        return a.copy() if self.name == "numpy" else a.clone()

    def assign(self, dst, src):
        """dst[...] = src, in place."""
        if self.name == "numpy":
            dst[...] = src
        else:
            dst.copy_(src)

    def column_major(self, a):
        """A 2-D array of the same shape and values, stored column by column (Fortran order)."""
        return np.asfortranarray(a) if self.name == "numpy" else a.t().contiguous().t()

    def one_hot(self, labels, n: int):
        """(S,) integer labels → (S, n) rows of the backend's dtype."""
        if self.name == "numpy":
            out = np.zeros((len(labels), n), dtype=self.dtype)
            out[np.arange(len(labels)), labels] = 1
            return out
        # scatter_, not one_hot: no check of the labels on the host (a recorded step never waits for one).
        out = self.torch.zeros((len(labels), n), dtype=self.dtype, device=labels.device)
        return out.scatter_(1, labels[:, None], 1.0)

    def correct(self, logits, labels):
        """Number of rows whose arg-max is the label (stays on the device)."""
        return (logits.argmax(1) == labels).sum()
