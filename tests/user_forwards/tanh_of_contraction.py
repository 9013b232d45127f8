"""A scaled tanh of an inline contraction: Y_sj = G_s tanh(Σ_k X_sk W_jk).

(Written to show a failure kind: 1 − tanh² of the inline sum was expanded into two sums,
Σ_s G X dY − Σ_s tanh² G X dY, which cancel where one sample's G is huge and its tanh saturated.)
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("tanh_of_contraction", __doc__)
S, D, H = forward.dims("S D H")
s, k, j = forward.indices(s=S, k=D, j=H)
X = forward.input("X", S, D)
G = forward.input("G", S)
W = forward.param("W", H, D)
forward.output("Y", (s, j), G[s] * sp.tanh(Sum(X[s, k] * W[j, k], k)))
