"""A 1-D convolution, then a max pool of width 2 (stride 2) over its outputs, in one forward."""
from derive.engine.notation import Forward, Max, Sum

forward = Forward("pool_of_conv", __doc__)
S, C, O, L, K = forward.dims("S C O L K")
s, c, o, t, k = forward.indices(s=S, c=C, o=O, t=L - K + 1, k=K)
X = forward.input("X", S, C, L)
W = forward.param("W", O, C, K)
b = forward.param("b", O)
Z = forward.let("Z", (s, o, t), Sum(X[s, c, t + k] * W[o, c, k], c, k) + b[o])
P, = forward.output_dims("P")
p, i = forward.indices(p=P, i=2)
forward.output("Y", (s, o, p), Max(Z[s, o, 2 * p + i], i))
