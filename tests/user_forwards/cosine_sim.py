"""Cosine similarity between the rows of two inputs.

    Y_s = Σ_j A_sj B_sj / √(Σ_j A_sj² · Σ_j B_sj²)
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("cosine_sim", "Cosine similarity between matching rows of A and B.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
A = forward.input("A", S, D)
B = forward.input("B", S, D)
dot = forward.let("dot", (s,), Sum(A[s, j] * B[s, j], j))
na = forward.let("na", (s,), Sum(A[s, j] ** 2, j), positive=True)
nb = forward.let("nb", (s,), Sum(B[s, j] ** 2, j), positive=True)
forward.output("Y", (s,), dot[s] / sp.sqrt(na[s] * nb[s]))
