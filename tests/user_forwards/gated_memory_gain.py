"""gated_memory with a gain per feature: Y = σ(X Wᵀ) ⊙ C ⊙ γ (written to show a failure kind).

The gain γ_j is over fewer axes than dA_sj, so the product C dY γ σ′(A) is laid out in two parts (γ broadcast
once); σ′ is still multiplied in first.
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("gated_memory_gain", __doc__)
S, I, H = forward.dims("S I H")
s, k, j = forward.indices(s=S, k=I, j=H)
X = forward.input("X", S, I)
C = forward.input("C", S, H)
W = forward.param("W", H, I)
gamma = forward.param("gamma", H)
A = forward.let("A", (s, j), Sum(X[s, k] * W[j, k], k))
f = forward.let("f", (s, j), 1 / (1 + sp.exp(-A[s, j])))
forward.output("Y", (s, j), f[s, j] * C[s, j] * gamma[j])
