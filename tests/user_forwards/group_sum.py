"""Features in k groups of D: a tensor sized k*D."""
from derive.engine.notation import Forward, Sum
forward = Forward("group_sum", __doc__)
S, D = forward.dims("S D")
k = forward.integer("k", 2, minimum=1)
s, j, i = forward.indices(s=S, j=D, i=k)
X = forward.input("X", S, k * D)
forward.output("Y", (s, j), Sum(X[s, k * j + i], i))
