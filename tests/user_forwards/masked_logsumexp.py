"""A log-sum-exp weighted by a constant mask M (0 drops a position): Y_s = log Σ_k M_sk exp(X_sk).

Shifted by the maximum of X_sk over the positions M keeps: with M = 0 at the row's largest logit and the kept
logits far below it, the maximum over every position left each kept term underflowing (log 0 = −inf).
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("masked_logsumexp", __doc__)
S, D = forward.dims("S D")
s, k = forward.indices(s=S, k=D)
X = forward.input("X", S, D)
M = forward.const("M", S, D)
forward.output("Y", (s,), sp.log(Sum(M[s, k] * sp.exp(X[s, k]), k)))
