"""Scaled dot-product attention, one head, its normaliser a named sum and its numerator inline (a user wrote it
so; its dK and dV were shifted by a column maximum and overflowed from scores of about 710)."""
import sympy as sp
from derive.engine.notation import Forward, Sum
forward = Forward("attention_named_sum", __doc__)
N, M, D, E = forward.dims("N M D E")
n, m, m2, d, e = forward.indices(n=N, m=M, m2=M, d=D, e=E)
Q = forward.input("Q", N, D)
K = forward.input("K", M, D)
V = forward.input("V", M, E)
A = forward.let("A", (n, m), Sum(Q[n, d] * K[m, d], d) / sp.sqrt(D))
Z = forward.let("Z", (n,), Sum(sp.exp(A[n, m2]), m2))
forward.output("Y", (n, e), Sum(sp.exp(A[n, m]) * V[m, e], m) / Z[n])
