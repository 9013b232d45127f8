"""Scaled dot-product attention weights: softmax(Q Kᵀ / √D) over the keys.

    E_sr = Σ_d Q_sd K_rd / √D
    Z_s  = Σ_r exp(E_sr)
    Y_sr = exp(E_sr) / Z_s
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("attention_weights", "Attention weights softmax(Q K^T / sqrt(D)) over the keys.")
S, R, D = forward.dims("S R D")
s, r, q, d = forward.indices(s=S, r=R, q=R, d=D)
Q = forward.input("Q", S, D)
K = forward.input("K", R, D)
E = forward.let("E", (s, r), Sum(Q[s, d] * K[r, d], d) / sp.sqrt(D))
Z = forward.let("Z", (s,), Sum(sp.exp(E[s, q]), q))
forward.output("Y", (s, r), sp.exp(E[s, r]) / Z[s])
