"""ReLU: Y = max(0, X), elementwise.

    Y_sj = max(0, X_sj)

``max`` is read with the tie on the constant branch, so ∂Y/∂X = 0 at X = 0,
as in PyTorch.
"""
import sympy as sp

from derive.engine.notation import Forward

forward = Forward("relu", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), sp.Max(0, X[s, j]))
