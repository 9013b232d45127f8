"""1-D max pool, window 2, dilation 2, stride 1, padding 1: Y[s,c,t] = max_k X[s, c, t + 2k - 1]."""
from derive.engine.notation import Forward, Max

forward = Forward("dilated_max_pool1d", __doc__)
S, C, T = forward.dims("S C T")
(To,) = forward.output_dims("To")
s, c, t = forward.indices(s=S, c=C, t=To)
(k,) = forward.indices(k=2)
X = forward.input("X", S, C, T, padding=(0, 0, 1))
forward.output("Y", (s, c, t), Max(X[s, c, t + 2 * k - 1], k))
