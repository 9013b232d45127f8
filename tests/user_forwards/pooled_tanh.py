"""A pooled intermediate then tanh, channels-last output: P[s,c,h] = max_i X[s,c,2h+i]; Y[s,h,c] = tanh(P[s,c,h])."""
import sympy as sp
from derive.engine.notation import Forward, Max

forward = Forward("pooled_tanh", __doc__)
S, C, T = forward.dims("S C T")
(To,) = forward.output_dims("To")
s, c, h = forward.indices(s=S, c=C, h=To)
(i,) = forward.indices(i=2)
X = forward.input("X", S, C, T)
P = forward.let("P", (s, c, h), Max(X[s, c, 2 * h + i], i))
forward.output("Y", (s, h, c), sp.tanh(P[s, c, h]))
