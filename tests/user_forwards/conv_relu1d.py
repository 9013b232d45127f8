"""A convolution followed by a ReLU, in one forward (padding 1, stride 1)."""
import sympy as sp
from derive.engine.notation import Forward, Sum

forward = Forward("conv_relu1d", __doc__)
S, C, O, L, K = forward.dims("S C O L K")
pad = forward.integer("padding", 1)
T, = forward.output_dims("T")
s, c, o, t, k = forward.indices(s=S, c=C, o=O, t=T, k=K)
X = forward.input("X", S, C, L, padding=(0, 0, pad))
W = forward.param("W", O, C, K)
b = forward.param("b", O)
forward.output("Y", (s, o, t), sp.Max(0, Sum(X[s, c, t + k - pad] * W[o, c, k], c, k) + b[o]))
