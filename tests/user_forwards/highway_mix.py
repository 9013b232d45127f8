"""A highway layer's mix, as a user writes it: Y = T tanh(X) + (1 − T) X with the gate T = σ(G).

(Written to show a failure kind: the forward was rewritten as one fraction in e^{−2|X|} with its coefficient
(1 − T) X expanded to X − T X, which cancels to 0 where T rounds to 1 and X is large: Y = 0 for 1.)
"""
import sympy as sp

from derive.engine.notation import Forward

forward = Forward("highway_mix", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
G = forward.input("G", S, D)
T = forward.let("T", (s, j), 1 / (1 + sp.exp(-G[s, j])))
forward.output("Y", (s, j), T[s, j] * sp.tanh(X[s, j]) + (1 - T[s, j]) * X[s, j])
