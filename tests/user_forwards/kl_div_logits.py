"""KL divergence KL(T ‖ softmax(X)) with soft targets, mean over the batch.

    Z_s = Σ_k exp(X_sk)
    L   = (1/S) Σ_s Σ_c T_sc (log T_sc − X_sc + log Z_s)       Σ_k T_sk = 1
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("kl_div_logits", "KL(T || softmax(X)) on logits X with distribution targets T, mean over the batch.")
S, C = forward.dims("S C")
s, c, k = forward.indices(s=S, c=C, k=C)
X = forward.input("X", S, C)
T = forward.const("T", S, C)
Z = forward.let("Z", (s,), Sum(sp.exp(X[s, k]), k))
forward.output("L", (), Sum(T[s, c] * (sp.log(T[s, c]) - X[s, c] + sp.log(Z[s])), s, c) / S)
forward.assume(Sum(T[s, k], k), 1)
