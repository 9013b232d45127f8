"""Max pooling over 2×2 windows with stride 1 (no padding)."""
from derive.engine.notation import Forward, Max

forward = Forward("max_pool2d_s1", __doc__)
S, C, H, W = forward.dims("S C H W")
Ho, Wo = forward.output_dims("Ho Wo")
s, c, h, w = forward.indices(s=S, c=C, h=Ho, w=Wo)
i, j = forward.indices(i=2, j=2)
X = forward.input("X", S, C, H, W)
forward.output("Y", (s, c, h, w), Max(X[s, c, h + i, w + j], i, j))
