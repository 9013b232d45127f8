"""1-D max pooling, window 3, stride 2, padding 1 (padding never wins)."""
from derive.engine.notation import Forward, Max

forward = Forward("max_pool1d", __doc__)
S, C, T = forward.dims("S C T")
(To,) = forward.output_dims("To")
s, c, t = forward.indices(s=S, c=C, t=To)
(k,) = forward.indices(k=3)
X = forward.input("X", S, C, T, padding=(0, 0, 1))
forward.output("Y", (s, c, t), Max(X[s, c, 2 * t + k - 1], k))
