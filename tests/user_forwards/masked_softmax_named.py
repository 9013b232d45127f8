"""A masked softmax whose normaliser is a named sum: Z_s = Σ_k M_sk exp(X_sk), Y_sj = M_sj exp(X_sj) / Z_s.

Z is stored shifted by the maximum over the positions M keeps (M any real, 0 drops a position); the numerator's
exp(X_sj − m_s) at a dropped position, which may overflow, is multiplied by its 0 as 0.
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("masked_softmax_named", __doc__)
S, D = forward.dims("S D")
s, j, k = forward.indices(s=S, j=D, k=D)
X = forward.input("X", S, D)
M = forward.const("M", S, D)
Z = forward.let("Z", (s,), Sum(M[s, k] * sp.exp(X[s, k]), k))
forward.output("Y", (s, j), M[s, j] * sp.exp(X[s, j]) / Z[s])
