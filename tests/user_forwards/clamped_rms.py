"""RMS normalisation whose energy is clamped from below rather than shifted by ε (a scaled sum inside a max).

    r_s = Σ_j X_sj² / D,   Y_sj = X_sj / √max(r_s, ε)
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("clamped_rms", "X over the RMS of its row, the mean square clamped at eps.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
eps = forward.scalar("eps", 1e-6)
X = forward.input("X", S, D)
r = forward.let("r", (s,), Sum(X[s, j] ** 2, j) / D)
forward.output("Y", (s, j), X[s, j] / sp.sqrt(sp.Max(r[s], eps)))
