"""A gate on a carried value, as a user writes an LSTM's forget path (written to show a failure kind).

    A = X Wᵀ,  f = σ(A),  Y = f ⊙ C

f is read once, by Y: its gradient C ⊙ dY is no array of its own (it overflows where C is the largest
float), and dA = C dY σ′(A) multiplies σ′ in before C and dY, so dA is finite wherever it is.
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("gated_memory", __doc__)
S, I, H = forward.dims("S I H")
s, k, j = forward.indices(s=S, k=I, j=H)
X = forward.input("X", S, I)
C = forward.input("C", S, H)
W = forward.param("W", H, I)
A = forward.let("A", (s, j), Sum(X[s, k] * W[j, k], k))
f = forward.let("f", (s, j), 1 / (1 + sp.exp(-A[s, j])))
forward.output("Y", (s, j), f[s, j] * C[s, j])
