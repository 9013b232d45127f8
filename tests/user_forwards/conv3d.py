"""A 3-D convolution with stride and padding: nine dimensions (verify once took minutes on these)."""
from derive.engine.notation import Forward, Sum

forward = Forward("conv3d", __doc__)
S, C, O, Di, Hi, Wi, KD, KH, KW = forward.dims("S C O Di Hi Wi KD KH KW")
Do, Ho, Wo = forward.output_dims("Do Ho Wo")
stride = forward.integer("stride", 1, minimum=1)
pad = forward.integer("padding", 0)
s, c, o, a, i, j, d, h, w = forward.indices(s=S, c=C, o=O, a=KD, i=KH, j=KW, d=Do, h=Ho, w=Wo)
X = forward.input("X", S, C, Di, Hi, Wi, padding=(0, 0, pad, pad, pad))
W = forward.param("W", O, C, KD, KH, KW)
b = forward.param("b", O)
forward.output("Y", (s, o, d, h, w),
               Sum(X[s, c, stride * d + a - pad, stride * h + i - pad, stride * w + j - pad] * W[o, c, a, i, j],
                   c, a, i, j) + b[o])
