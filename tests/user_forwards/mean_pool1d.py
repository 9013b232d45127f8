"""Mean pooling with stride 1 whose window size is named kernel (a name the engine once used itself)."""
from derive.engine.notation import Forward, Sum

forward = Forward("mean_pool1d", __doc__)
S, C, L = forward.dims("S C L")
kernel = forward.integer("kernel", 3, minimum=1)
s, c, t, i = forward.indices(s=S, c=C, t=L - kernel + 1, i=kernel)
X = forward.input("X", S, C, L)
forward.output("Y", (s, c, t), Sum(X[s, c, t + i], i) / kernel)
