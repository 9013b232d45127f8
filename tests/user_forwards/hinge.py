"""Binary hinge loss on scores X with labels T, mean over the batch.

    L = (1/S) Σ_s max(0, 1 − T_s X_s)
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("hinge", "Hinge loss max(0, 1 - T X) on scores X, mean over the batch.")
(S,) = forward.dims("S")
(s,) = forward.indices(s=S)
X = forward.input("X", S)
T = forward.const("T", S)
forward.output("L", (), Sum(sp.Max(0, 1 - T[s] * X[s]), s) / S)
