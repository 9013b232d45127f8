"""A weight-normalised linear layer, W = g·V/‖V‖ row by row (its derivation once depended on the hash seed)."""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("weight_norm_linear", __doc__)
S, I, O = forward.dims("S I O")
s, j, k, o = forward.indices(s=S, j=I, k=I, o=O)
X = forward.input("X", S, I)
V = forward.param("V", O, I)
g = forward.param("g", O)
b = forward.param("b", O)
forward.output("Y", (s, o), g[o] * Sum(X[s, j] * V[o, j], j) / sp.sqrt(Sum(V[o, k] ** 2, k)) + b[o])
