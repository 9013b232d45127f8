"""A strided, dilated, padded 1-D convolution: Y_sot = Σ_{c,k} X[s, c, σt + δk − p] W_ock."""
from derive.engine.notation import Forward, Sum

forward = Forward("dilated_conv1d", __doc__)
S, C, O, T, K = forward.dims("S C O T K")
(To,) = forward.output_dims("To")
stride = forward.integer("stride", 2, minimum=1)
dilation = forward.integer("dilation", 2, minimum=1)
pad = forward.integer("padding", 1)
s, c, o, t, k = forward.indices(s=S, c=C, o=O, t=To, k=K)
X = forward.input("X", S, C, T, padding=(0, 0, pad))
W = forward.param("W", O, C, K)
forward.output("Y", (s, o, t), Sum(X[s, c, stride * t + dilation * k - pad] * W[o, c, k], c, k))
