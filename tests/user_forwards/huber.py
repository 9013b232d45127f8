"""Huber loss with threshold delta, mean over the batch (summed over features).

    d_sj = X_sj − T_sj
    L    = (1/S) Σ_s Σ_j  { d²/2               if |d| ≤ δ
                          { δ (|d| − δ/2)      otherwise
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("huber", "Huber loss with threshold delta, mean over the batch.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
delta = forward.scalar("delta", 0.5, latex=r"\delta")
X = forward.input("X", S, D)
T = forward.const("T", S, D)
d = X[s, j] - T[s, j]
forward.output(
    "L", (),
    Sum(sp.Piecewise((d ** 2 / 2, sp.Abs(d) <= delta), (delta * (sp.Abs(d) - delta / 2), True)), s, j) / S,
)
