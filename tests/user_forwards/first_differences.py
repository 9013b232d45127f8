"""Differences of neighbours: the output has D − 1 features, its parameter g is sized D − 1 too, and X_sj reads part of its axis."""
from derive.engine.notation import Forward

forward = Forward("first_differences", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D - 1)
X = forward.input("X", S, D)
g = forward.param("g", D - 1)
forward.output("Y", (s, j), g[j] * (X[s, j + 1] - X[s, j]))
