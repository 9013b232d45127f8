"""Two outputs: the mean of each row, and its (biased) variance, which reads the mean."""
from derive.engine.notation import Forward, Sum

forward = Forward("mean_and_var", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
mu = forward.output("mu", (s,), Sum(X[s, j], j) / D)
forward.output("var", (s,), Sum((X[s, j] - mu[s]) ** 2, j) / D)
