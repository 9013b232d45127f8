"""A valid 1-D convolution whose output index runs over the dimension expression L − K + 1."""
from derive.engine.notation import Forward, Sum

forward = Forward("conv1d_range", __doc__)
S, C, O, L, K = forward.dims("S C O L K")
s, c, o, t, k = forward.indices(s=S, c=C, o=O, t=L - K + 1, k=K)
X = forward.input("X", S, C, L)
W = forward.param("W", O, C, K)
b = forward.param("b", O)
forward.output("Y", (s, o, t), Sum(X[s, c, t + k] * W[o, c, k], c, k) + b[o])
