"""Leaky ReLU with a negative slope, elementwise.

    Y_sj = X_sj                 if X_sj > 0
         = negative_slope X_sj  otherwise
"""
import sympy as sp

from derive.engine.notation import Forward

forward = Forward("leaky_relu", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
slope = forward.scalar("negative_slope", 0.01, latex=r"\nu")
X = forward.input("X", S, D)
forward.output("Y", (s, j), sp.Piecewise((X[s, j], X[s, j] > 0), (slope * X[s, j], True)))
