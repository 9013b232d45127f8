"""Softmax with a temperature tau over the feature axis.

    Z_s  = Σ_k exp(X_sk / τ)
    Y_sc = exp(X_sc / τ) / Z_s
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("softmax_temperature", "Softmax of X / tau over the feature axis.")
S, C = forward.dims("S C")
s, c, k = forward.indices(s=S, c=C, k=C)
tau = forward.scalar("tau", 0.7, latex=r"\tau")
X = forward.input("X", S, C)
Z = forward.let("Z", (s,), Sum(sp.exp(X[s, k] / tau), k))
forward.output("Y", (s, c), sp.exp(X[s, c] / tau) / Z[s])
