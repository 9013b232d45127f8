"""Backends: each a spelling table plus capability flags (ideas from SymPy's per-target function
tables and tinygrad's ``code_for_op``).

A backend names:
- ``functions``: SymPy's elementwise functions in its vocabulary (``exp`` → ``np.exp``);
- ``spell``: one entry per kind of array operation (``arrays.py``), a function of the renderer and
  the node that returns its code; operands are rendered by ``r.value``/``r.receiver``;
- ``infix``: the operation kinds it spells as infix expressions (``a @ b``), parenthesised as operands;
- capability flags, read by the lowering: ``in_place``, ``fused_add_matmul``, ``einsum_products``;
- ``helpers``: the module of plain Python functions its code calls (``derive/helpers/``), copied once
  into each output folder as ``_helpers.py``.

``CALLS`` are the spellings every backend shares: calls of the helper functions of the same name.
A new backend is a table like ``numpy.py``: its vocabulary, its spellings, its flags and its helpers.
"""
from __future__ import annotations

from .base import CALLS, Backend, Capabilities
from .numpy import NUMPY
from .torch import TORCH

BACKENDS = {b.name: b for b in (NUMPY, TORCH)}

__all__ = ["BACKENDS", "CALLS", "Backend", "Capabilities"]
