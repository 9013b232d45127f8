"""Exact GELU with the error function, elementwise.

    Y_sj = X_sj/2 (1 + erf(X_sj/√2))
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("gelu_exact", "Exact GELU X/2 (1 + erf(X/sqrt(2))), elementwise.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), X[s, j] / 2 * (1 + sp.erf(X[s, j] / sp.sqrt(2))))
