"""Cross-entropy with label smoothing on soft targets, the log-softmax inline, mean over the batch.

    L = −(1/S) Σ_s Σ_c ((1 − ε) T_sc + ε/C) (X_sc − log Σ_k exp(X_sk))
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("label_smoothing_ce", __doc__)
S, C = forward.dims("S C")
s, c, k = forward.indices(s=S, c=C, k=C)
eps = forward.scalar("eps", 0.1, latex=r"\varepsilon")
X = forward.input("X", S, C)
T = forward.const("T", S, C)
target = (1 - eps) * T[s, c] + eps / C
forward.output("L", (), -Sum(target * (X[s, c] - sp.log(Sum(sp.exp(X[s, k]), k))), s, c) / S)
