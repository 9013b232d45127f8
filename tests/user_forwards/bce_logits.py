"""Binary cross-entropy on logits with soft targets, mean over the batch.

    P_sj = 1 / (1 + exp(−X_sj))
    L    = −(1/S) Σ_s Σ_j [T_sj log P_sj + (1 − T_sj) log(1 − P_sj)]      T in [0, 1]
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("bce_logits", "Binary cross-entropy on logits X with soft targets T in [0, 1], mean over the batch.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
T = forward.const("T", S, D)
P = forward.let("P", (s, j), 1 / (1 + sp.exp(-X[s, j])))
forward.output(
    "L", (),
    -Sum(T[s, j] * sp.log(P[s, j]) + (1 - T[s, j]) * sp.log(1 - P[s, j]), s, j) / S,
)
