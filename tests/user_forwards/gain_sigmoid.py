"""Sigmoid with a learned gain per feature (a gain may be 0).

    Y_sj = γ_j / (1 + e^{−X_sj})
"""
import sympy as sp

from derive.engine.notation import Forward

forward = Forward("gain_sigmoid", "Sigmoid with a learned gain gamma_j per feature.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
gamma = forward.param("gamma", D)
forward.output("Y", (s, j), gamma[j] / (1 + sp.exp(-X[s, j])))
