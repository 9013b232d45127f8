"""ReLU6: ReLU capped at 6, elementwise.

    Y_sj = min(6, max(0, X_sj))
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("relu6", "ReLU6 min(6, max(0, X)), elementwise.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), sp.Min(6, sp.Max(0, X[s, j])))
