"""Mish: X tanh(softplus(X)), elementwise.

    Y_sj = X_sj tanh(log(1 + exp(X_sj)))
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("mish", "Mish X tanh(log(1 + exp(X))), elementwise.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), X[s, j] * sp.tanh(sp.log(1 + sp.exp(X[s, j]))))
