"""Hard swish: X times its hard sigmoid, elementwise (MobileNetV3).

    Y_sj = X_sj max(0, min(1, X_sj/6 + 1/2))
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("hard_swish", "Hard swish X * max(0, min(1, X/6 + 1/2)), elementwise.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), X[s, j] * sp.Max(0, sp.Min(1, X[s, j] / 6 + 0.5)))
