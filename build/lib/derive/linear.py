"""Linear layer, batch first: Y = X Wᵀ + b.

    Y_sn = Σ_m X_sm W_nm + b_n        X: (S, M), W: (N, M), b: (N,)
"""
from derive.engine.notation import Forward, Sum

forward = Forward("linear", __doc__)
S, M, N = forward.dims("S M N")
s, m, n = forward.indices(s=S, m=M, n=N)
X = forward.input("X", S, M)
W = forward.param("W", N, M)
b = forward.param("b", N)
forward.output("Y", (s, n), Sum(X[s, m] * W[n, m], m) + b[n])
