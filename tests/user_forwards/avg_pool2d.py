"""Average pooling over k×k windows with stride k (no padding): a sum over the window, divided by k²."""
from derive.engine.notation import Forward, Sum

forward = Forward("avg_pool2d", __doc__)
S, C, H, W = forward.dims("S C H W")
Ho, Wo = forward.output_dims("Ho Wo")
k = forward.integer("k", 2, minimum=1)
s, c, h, w = forward.indices(s=S, c=C, h=Ho, w=Wo)
i, j = forward.indices(i=k, j=k)
X = forward.input("X", S, C, H, W)
forward.output("Y", (s, c, h, w), Sum(X[s, c, k * h + i, k * w + j], i, j) / k ** 2)
