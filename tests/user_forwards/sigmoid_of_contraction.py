"""A gate written inline: Y = h0 / (1 + e^{−Σ_k X W}), the contraction inside the exponential.

(Written to show a failure kind: σ′ came out as e^a/(1 + e^a)² of the inline sum, NaN past a = 709 in
float64 and 88 in float32. The engine now lifts the contraction into an intermediate of its own, _z1.)
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("sigmoid_of_contraction", __doc__)
S, D, H = forward.dims("S D H")
s, k, j = forward.indices(s=S, k=D, j=H)
X = forward.input("X", S, D)
h0 = forward.input("h0", S, H)
W = forward.param("W", H, D)
forward.output("Y", (s, j), h0[s, j] / (1 + sp.exp(-Sum(X[s, k] * W[j, k], k))))
