"""Hard tanh: X clamped to [-1, 1], elementwise.

    Y_sj = min(1, max(-1, X_sj))
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("hard_tanh", "Hard tanh: X clamped to [-1, 1], elementwise.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), sp.Min(1, sp.Max(-1, X[s, j])))
