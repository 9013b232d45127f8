"""Softmax over the last axis of a rank-3 tensor (N, H, W).

    Z_nh   = Σ_k exp(X_nhk)
    Y_nhw  = exp(X_nhw) / Z_nh
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("softmax_hw", "Softmax over the last axis of an (N, H, W) tensor.")
N, H, W = forward.dims("N H W")
n, h, w, k = forward.indices(n=N, h=H, w=W, k=W)
X = forward.input("X", N, H, W)
Z = forward.let("Z", (n, h), Sum(sp.exp(X[n, h, k]), k))
forward.output("Y", (n, h, w), sp.exp(X[n, h, w]) / Z[n, h])
