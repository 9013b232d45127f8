"""Checkpoints: one .npz of named arrays plus the config, written atomically."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def save(path: Path, state: dict, config: dict) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        np.savez(fh, __config__=np.array(json.dumps(config)), **state)
    os.replace(tmp, path)  # a crash leaves the previous checkpoint, never half of one


def load(path: Path) -> tuple[dict, dict]:
    with np.load(Path(path), allow_pickle=False) as z:
        config = json.loads(str(z["__config__"]))
        return {k: z[k] for k in z.files if k != "__config__"}, config


def write_json(path: Path, obj) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)
