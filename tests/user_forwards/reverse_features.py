"""The features in reverse order, a dimension in the index expression: Y_sj = w_j X[s, D − 1 − j]."""
from derive.engine.notation import Forward

forward = Forward("reverse_features", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
w = forward.param("w", D)
forward.output("Y", (s, j), w[j] * X[s, D - 1 - j])
