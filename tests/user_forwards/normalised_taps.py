"""Taps over time of the first channel, each read divided by the RMS of its own time step (a scaled sum read
at a shifted index, inside the sum over the taps).

    r_t = Σ_c X_tc² / C,   Y_t = Σ_k W_k X_{t+k,0} / √(r_{t+k} + ε)
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("normalised_taps", "A filter over time of each step normalised by its RMS.")
T, C, K = forward.dims("T C K")
(To,) = forward.output_dims("To")
t, c, k, p = forward.indices(t=T, c=C, k=K, p=To)
eps = forward.scalar("eps", 1e-6)
X = forward.input("X", T, C)
W = forward.param("W", K)
r = forward.let("r", (t,), Sum(X[t, c] ** 2, c) / C)
forward.output("Y", (p,), Sum(W[k] * X[p + k, 0] / sp.sqrt(r[p + k] + eps), k))
