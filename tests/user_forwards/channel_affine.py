"""Per-channel scale and shift on (N, C, L) activations.

    Y_ncl = γ_c X_ncl + β_c
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("channel_affine", "Per-channel scale and shift of an (N, C, L) tensor.")
N, C, L = forward.dims("N C L")
n, c, l = forward.indices(n=N, c=C, l=L)
X = forward.input("X", N, C, L)
gamma = forward.param("gamma", C, latex=r"\gamma")
beta = forward.param("beta", C, latex=r"\beta")
forward.output("Y", (n, c, l), gamma[c] * X[n, c, l] + beta[c])
