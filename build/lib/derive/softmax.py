"""Softmax over the feature axis, row by row.

    Z_s  = Σ_k exp(X_sk)
    Y_sc = exp(X_sc) / Z_s
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("softmax", __doc__)
S, C = forward.dims("S C")
s, c, k = forward.indices(s=S, c=C, k=C)
X = forward.input("X", S, C)
Z = forward.let("Z", (s,), Sum(sp.exp(X[s, k]), k))
forward.output("Y", (s, c), sp.exp(X[s, c]) / Z[s])
