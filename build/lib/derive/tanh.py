"""Hyperbolic tangent, elementwise.

    Y_sj = tanh(X_sj)
"""
import sympy as sp

from derive.engine.notation import Forward

forward = Forward("tanh", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), sp.tanh(X[s, j]))
