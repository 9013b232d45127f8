"""Bilinear layer with two inputs (as torch.nn.Bilinear).

    Y_sn = Σ_i Σ_j X1_si W_nij X2_sj + b_n
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("bilinear", "Bilinear form Y_sn = sum_ij X1_si W_nij X2_sj + b_n.")
S, I, J, N = forward.dims("S I J N")
s, i, j, n = forward.indices(s=S, i=I, j=J, n=N)
X1 = forward.input("X1", S, I)
X2 = forward.input("X2", S, J)
W = forward.param("W", N, I, J)
b = forward.param("b", N)
forward.output("Y", (s, n), Sum(X1[s, i] * W[n, i, j] * X2[s, j], i, j) + b[n])
