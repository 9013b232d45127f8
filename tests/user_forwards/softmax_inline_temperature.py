"""Softmax of X / tau written as one ratio: Y_sj = exp(X_sj/τ) / Σ_k exp(X_sk/τ).

Numerator and denominator are shifted by the same maximum, max_k X_sk/τ.
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("softmax_inline_temperature", __doc__)
S, D = forward.dims("S D")
tau = forward.scalar("tau", 2.0, latex=r"\tau")
s, j, k = forward.indices(s=S, j=D, k=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), sp.exp(X[s, j] / tau) / Sum(sp.exp(X[s, k] / tau), k))
