"""A learned window: weights g sized by the window's integer hyper-parameter k (checked against it, never read from g)."""
from derive.engine.notation import Forward, Sum
forward = Forward("learned_window", __doc__)
S, L = forward.dims("S L")
k = forward.integer("k", 3, minimum=1)
T, = forward.output_dims("T")
s, t, i = forward.indices(s=S, t=T, i=k)
X = forward.input("X", S, L)
g = forward.param("g", k)
forward.output("Y", (s, t), Sum(X[s, t + i] * g[i], i))
