"""A leaky ReLU, then RMS normalisation by the energy of the input before it (a select beside a scaled sum).

    r_s = Σ_j X_sj² / D,   Y_sj = leaky(X_sj) / √(r_s + ε)
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("leaky_rms_norm", "A leaky ReLU divided by the RMS of its input.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
eps = forward.scalar("eps", 1e-6)
X = forward.input("X", S, D)
r = forward.let("r", (s,), Sum(X[s, j] ** 2, j) / D)
forward.output("Y", (s, j), sp.Piecewise((X[s, j], X[s, j] > 0), (X[s, j] / 10, True)) / sp.sqrt(r[s] + eps))
