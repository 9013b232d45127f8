"""Logistic sigmoid, elementwise.

    Y_sj = 1 / (1 + exp(−X_sj))
"""
import sympy as sp

from derive.engine.notation import Forward

forward = Forward("sigmoid", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), 1 / (1 + sp.exp(-X[s, j])))
