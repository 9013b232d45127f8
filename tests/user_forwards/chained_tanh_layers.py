"""Two tanh layers written inline, chained: O = tanh(tanh(X Wᵀ) Vᵀ).

(Written to show a failure kind: each forward lifted its contraction as _z1, and the chain kept both under
one name: "inconsistent shapes". The second forward's now takes the next name free.)
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

a = Forward("chained_tanh_layers_a", "")
S, D, H = a.dims("S D H")
s, k, j = a.indices(s=S, k=D, j=H)
X = a.input("X", S, D)
W = a.param("W", H, D)
a.output("Y", (s, j), sp.tanh(Sum(X[s, k] * W[j, k], k)))
b = Forward("chained_tanh_layers_b", "")
E, = b.dims("E")
e, = b.indices(e=E)
Z = b.input("Z", S, H)
V = b.param("V", E, H)
b.output("O", (s, e), sp.tanh(Sum(Z[s, j] * V[e, j], j)))
forward = a.chain("chained_tanh_layers", __doc__, b, link="Z", rename="P")
