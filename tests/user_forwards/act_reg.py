"""Activations and their squared sum: Y = tanh(X Wᵀ), L = Σ Y² (an output read by a later output)."""
import sympy as sp
from derive.engine.notation import Forward, Sum

forward = Forward("act_reg", __doc__)
S, I, O = forward.dims("S I O")
s, k, o = forward.indices(s=S, k=I, o=O)
X = forward.input("X", S, I)
W = forward.param("W", O, I)
Y = forward.output("Y", (s, o), sp.tanh(Sum(X[s, k] * W[o, k], k)))
forward.output("L", (), Sum(Y[s, o] ** 2, s, o))
