"""CIFAR-10 from the official python layout, read safely, normalised and split as the course did.

``<data_dir>/cifar-10-batches-py/data_batch_1..5, test_batch`` are pickles. A
pickle can run arbitrary code, so they are read with an unpickler that admits
only what the format holds: NumPy arrays and dtypes, lists, dicts, bytes.

Two editions of the course prepare the images differently (``RECIPES``):

- ``mlp``, the MLP assignment (seeds 000/001; its ``cifar10_utils.read_data_sets``): pixels / 255,
  standardised per channel with the stated MEAN and STD; 5,000 training images held out for validation
  (the course draws them at random with seed 42; here they are the last 5,000).
- ``convnet``, the assignment the ConvNet report followed (seed 002, section 4: "the default parameters
  provided"; that edition's ``cifar10_utils.preprocess_cifar10_data`` and ``get_cifar10(validation_size=0)``):
  raw pixel values 0..255 minus the training images' mean image (one mean per pixel and channel, no
  scaling); no validation split, all 50,000 training images train. The test set is the 10,000 test images
  in both.
"""
from __future__ import annotations

import io
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
MEAN = np.array([0.491, 0.482, 0.447], dtype=np.float32)
STD = np.array([0.247, 0.243, 0.262], dtype=np.float32)
N_VALIDATION = 5000
N_CLASSES = 10


@dataclass(frozen=True)
class Recipe:
    """How one edition of the course prepares CIFAR-10."""

    standardise: bool   # per channel with MEAN and STD; False: minus the training images' mean image
    n_validation: int   # the last n training images, held out


RECIPES = {"mlp": Recipe(standardise=True, n_validation=N_VALIDATION),
           "convnet": Recipe(standardise=False, n_validation=0)}


class DataError(Exception):
    """The dataset is missing or not in the expected format (message is one line)."""


class RestrictedUnpickler(pickle.Unpickler):
    """Admits the globals a CIFAR-10 batch refers to and nothing else."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        # Python 3 writes bytes this way in protocol-2 pickles; it only turns a str into bytes.
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of the CIFAR-10 format")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 3072), int64 labels (N,)) from one batch file."""
    try:
        raw = RestrictedUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise DataError(f"{path}: not a CIFAR-10 batch ({e})") from None
    if not isinstance(raw, dict) or b"data" not in raw or b"labels" not in raw:
        raise DataError(f"{path}: not a CIFAR-10 batch (no data/labels)")
    x, y = np.asarray(raw[b"data"]), np.asarray(raw[b"labels"], dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(y) != len(x):
        raise DataError(f"{path}: unexpected shapes {x.shape} {x.dtype} / {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= N_CLASSES):
        raise DataError(f"{path}: labels outside 0..9")
    return x, y


def _download(data_dir: Path) -> None:
    """torchvision's download, where the network allows it. A failed download leaves no folder behind that
    was not there before (torchvision makes ``data_dir`` first)."""
    made = [p for p in (data_dir, *data_dir.parents) if not p.exists()]
    try:
        from torchvision.datasets import CIFAR10

        CIFAR10(root=str(data_dir), train=True, download=True)
    except Exception as e:  # any failure means: tell the user where to put the files
        for p in made:  # innermost first: data_dir with any partial download, then parents it made, if empty
            try:
                shutil.rmtree(p) if p == data_dir else p.rmdir()
            except OSError:
                break
        raise DataError(
            f"CIFAR-10 not found in {data_dir / FOLDER} and the download failed ({type(e).__name__}); "
            f"put the official python files there (or run: python ../shared/data/make-cifar10.py {data_dir})"
        ) from None


@dataclass
class Split:
    x: np.ndarray   # float32 (N, 3072), normalised
    y: np.ndarray   # int64 (N,)


@dataclass
class Cifar10:
    train: Split
    validation: Split
    test: Split


def normalise(x: np.ndarray) -> np.ndarray:
    """uint8 rows of 1024 R, 1024 G, 1024 B values → float32, per-channel standardised."""
    out = x.astype(np.float32).reshape(len(x), 3, 1024) / 255.0
    out -= MEAN[None, :, None]
    out /= STD[None, :, None]
    return out.reshape(len(x), 3072)


def mean_image(x: np.ndarray) -> np.ndarray:
    """The mean of uint8 rows, per pixel and channel (3072 values, float64: exact to rounding)."""
    return x.mean(axis=0, dtype=np.float64)


def centre(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """uint8 rows → float32 pixel values 0..255 minus ``mean`` (a mean image), not rescaled (in float32, as the
    course's loader computed it, without a float64 copy of the images)."""
    out = x.astype(np.float32)
    out -= mean.astype(np.float32)
    return out


def load(data_dir: Path | str, download: bool = True, recipe: str = "mlp") -> Cifar10:
    """The training images less the recipe's validation images (the last ones, fixed) / test 10,000,
    prepared as ``RECIPES[recipe]`` says: ``mlp`` 45,000 / 5,000 / 10,000, ``convnet`` 50,000 / 0 / 10,000."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown data recipe {recipe!r} ({', '.join(RECIPES)})")
    r = RECIPES[recipe]
    data_dir = Path(data_dir)
    folder = data_dir / FOLDER
    if not (folder / TEST_FILE).exists():
        if not download:
            raise DataError(f"CIFAR-10 not found in {folder}")
        _download(data_dir)
    missing = [n for n in (*TRAIN_FILES, TEST_FILE) if not (folder / n).exists()]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)}")
    parts = [read_batch(folder / n) for n in TRAIN_FILES]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    tx, ty = read_batch(folder / TEST_FILE)
    n = len(x) - r.n_validation
    if n <= 0:
        raise DataError(f"{folder}: only {len(x)} training images")
    if r.standardise:
        x, tx = normalise(x), normalise(tx)
    else:  # the statistics of every training image, as the course's loader took them before any split
        m = mean_image(x)
        x, tx = centre(x, m), centre(tx, m)
    return Cifar10(Split(x[:n], y[:n]), Split(x[n:], y[n:]), Split(tx, ty))
