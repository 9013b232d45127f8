"""Log-softmax written inline, no named normaliser: Y_sj = X_sj − log Σ_k exp(X_sk).

The sum inside the log is shifted by its maximum where it stands (finite at logits + 1000).
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("log_softmax_inline", __doc__)
S, D = forward.dims("S D")
s, j, k = forward.indices(s=S, j=D, k=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), X[s, j] - sp.log(Sum(sp.exp(X[s, k]), k)))
