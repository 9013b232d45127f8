"""A forward difference along the features, zero past the last one: Y_sj = X_s,j+1 − X_sj."""
from derive.engine.notation import Forward

forward = Forward("forward_difference", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), X[s, j + 1] - X[s, j])
