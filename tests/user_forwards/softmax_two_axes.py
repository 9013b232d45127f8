"""Softmax over two axes at once: Y_shw = exp(X_shw) / Σ_k Σ_l exp(X_skl).

Shifted by the maximum over both summed indices.
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("softmax_two_axes", __doc__)
S, H, W = forward.dims("S H W")
s, h, w, k, l = forward.indices(s=S, h=H, w=W, k=H, l=W)
X = forward.input("X", S, H, W)
forward.output("Y", (s, h, w), sp.exp(X[s, h, w]) / Sum(sp.exp(X[s, k, l]), k, l))
