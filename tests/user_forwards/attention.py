"""Attention without named intermediates: weights A_sij = exp(Σ_d Q_sid K_sjd) / Σ_l exp(Σ_d Q_sid K_sld),
output Y_sie = Σ_j A_sij V_sje.

Every exponential sum, the forward's and those its gradients bring back, is shifted by max_l Σ_d Q_sid K_sld.
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("attention", __doc__)
S, T, R, D, E = forward.dims("S T R D E")
s, i, j, l, d, e = forward.indices(s=S, i=T, j=R, l=R, d=D, e=E)
Q = forward.input("Q", S, T, D)
K = forward.input("K", S, R, D)
V = forward.input("V", S, R, E)
weight = sp.exp(Sum(Q[s, i, d] * K[s, j, d], d)) / Sum(sp.exp(Sum(Q[s, i, d] * K[s, l, d], d)), l)
forward.output("Y", (s, i, e), Sum(weight * V[s, j, e], j))
