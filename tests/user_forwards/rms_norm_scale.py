"""RMS normalisation whose gain a user happened to name ``r_scale`` (a name the numerics pass also makes).

    r_s = Σ_j X_sj² / D,   Y_sj = r_scale_j X_sj / √(r_s + ε)
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("rms_norm_scale", "RMS normalisation with a gain named r_scale.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
eps = forward.scalar("eps", 1e-6)
X = forward.input("X", S, D)
gain = forward.param("r_scale", D)
r = forward.let("r", (s,), Sum(X[s, j] ** 2, j) / D)
forward.output("Y", (s, j), gain[j] * X[s, j] / sp.sqrt(r[s] + eps))
