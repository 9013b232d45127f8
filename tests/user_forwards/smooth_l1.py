"""Smooth L1 loss with threshold beta, three branches, mean over the batch.

    d_sj = X_sj − T_sj
    ℓ    = d − β/2     if d > β
         = −d − β/2    if d < −β
         = d²/(2β)     otherwise
    L    = (1/S) Σ_s Σ_j ℓ_sj
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("smooth_l1", "Smooth L1 loss with threshold beta, mean over the batch.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
beta = forward.scalar("beta", 0.5, latex=r"\beta")
X = forward.input("X", S, D)
T = forward.const("T", S, D)
d = X[s, j] - T[s, j]
forward.output(
    "L", (),
    Sum(sp.Piecewise((d - beta / 2, d > beta), (-d - beta / 2, d < -beta), (d ** 2 / (2 * beta), True)), s, j) / S,
)
