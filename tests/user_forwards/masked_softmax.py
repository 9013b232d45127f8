"""Softmax weighted by a constant mask M (any real; 0 drops a position): Y_sj = M_sj exp(X_sj) / Σ_k M_sk exp(X_sk).

The weighted sum is shifted by the maximum of X_sk over the positions M keeps (over every position, M = 0 at the
row's largest logit left each kept term underflowing: 0/0); the numerator's exp(X_sj − m_s) at a dropped position,
which may overflow, is multiplied by its 0 as 0.
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("masked_softmax", __doc__)
S, D = forward.dims("S D")
s, j, k = forward.indices(s=S, j=D, k=D)
X = forward.input("X", S, D)
M = forward.const("M", S, D)
forward.output("Y", (s, j), M[s, j] * sp.exp(X[s, j]) / Sum(M[s, k] * sp.exp(X[s, k]), k))
