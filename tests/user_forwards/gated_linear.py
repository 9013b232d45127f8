"""Gated linear layer with two matrix products (written by a user-style reviewer).

    A = X Wᵀ + b,  G = X Vᵀ + c,  Y = A σ(G)

A is a let: rewriting σ(G) as Y/A would divide by A, 0 for a zero input row and
a zero bias (NaN where the gradient is finite).
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("gated_linear", "Gated linear layer Y = (X Wᵀ + b) * sigmoid(X Vᵀ + c).")
S, M, N = forward.dims("S M N")
s, m, n = forward.indices(s=S, m=M, n=N)
X = forward.input("X", S, M)
W = forward.param("W", N, M)
b = forward.param("b", N)
V = forward.param("V", N, M)
c = forward.param("c", N)
A = forward.let("A", (s, n), Sum(X[s, m] * W[n, m], m) + b[n])
G = forward.let("G", (s, n), Sum(X[s, m] * V[n, m], m) + c[n])
forward.output("Y", (s, n), A[s, n] / (1 + sp.exp(-G[s, n])))
