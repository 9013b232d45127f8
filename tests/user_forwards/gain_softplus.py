"""Softplus with a learned gain per feature (its backward is called without dX by a first layer).

    Y_sj = γ_j log(1 + e^{X_sj})
"""
import sympy as sp

from derive.engine.notation import Forward

forward = Forward("gain_softplus", "Softplus with a learned gain gamma_j per feature.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
gamma = forward.param("gamma", D)
forward.output("Y", (s, j), gamma[j] * sp.log(1 + sp.exp(X[s, j])))
