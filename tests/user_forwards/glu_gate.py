"""Gated linear unit with two inputs: A gated by the sigmoid of B.

    Y_sj = A_sj / (1 + exp(−B_sj))
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("glu_gate", "Gated unit Y = A * sigmoid(B) with two inputs A and B.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
A = forward.input("A", S, D)
B = forward.input("B", S, D)
forward.output("Y", (s, j), A[s, j] / (1 + sp.exp(-B[s, j])))
