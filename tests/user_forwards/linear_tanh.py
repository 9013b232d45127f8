"""A linear map and its tanh, the pre-activation named: Y = tanh(X Wᵀ + b)."""
import sympy as sp
from derive.engine.notation import Forward, Sum

forward = Forward("linear_tanh", __doc__)
S, I, O = forward.dims("S I O")
s, k, o = forward.indices(s=S, k=I, o=O)
X = forward.input("X", S, I)
W = forward.param("W", O, I)
b = forward.param("b", O)
Z = forward.let("Z", (s, o), Sum(X[s, k] * W[o, k], k) + b[o])
forward.output("Y", (s, o), sp.tanh(Z[s, o]))
