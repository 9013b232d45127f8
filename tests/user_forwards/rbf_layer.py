"""A radial-basis layer (written by a user-style reviewer from the docs alone).

    Y_so = exp(−γ Σ_k (X_sk − C_ok)²)

Its backward is expanded into matrix products, 2 X Σ_o d − 2 d C, which cancel at large common offsets of X and C
(float32 at 1e6): not yet fixed, kept here as a forward the engine derives right at ordinary values.
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("rbf_layer", "Gaussian radial basis functions around centres C.")
S, D, O = forward.dims("S D O")
s, o, k = forward.indices(s=S, o=O, k=D)
gamma = forward.scalar("gamma", 0.1)
X = forward.input("X", S, D)
C = forward.param("C", O, D)
forward.output("Y", (s, o), sp.exp(-gamma * Sum((X[s, k] - C[o, k]) ** 2, k)))
