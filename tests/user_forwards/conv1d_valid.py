"""A 1-D convolution written the natural way, no padding: Y_sot = Σ_{c,k} X_s,c,t+k W_ock + b_o.

The output length To = T − K + 1 follows from the read X[s, c, t + k].
"""
from derive.engine.notation import Forward, Sum

forward = Forward("conv1d_valid", __doc__)
S, C, O, T, K = forward.dims("S C O T K")
(To,) = forward.output_dims("To")
s, c, o, t, k = forward.indices(s=S, c=C, o=O, t=To, k=K)
X = forward.input("X", S, C, T)
W = forward.param("W", O, C, K)
b = forward.param("b", O)
forward.output("Y", (s, o, t), Sum(X[s, c, t + k] * W[o, c, k], c, k) + b[o])
