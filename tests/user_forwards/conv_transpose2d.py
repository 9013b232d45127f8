"""A 2-D transposed convolution with stride 2 and padding 1, its output extent derived from the reads
(no output padding)."""
from derive.engine.notation import Forward, Sum

forward = Forward("conv_transpose2d", __doc__)
S, C, O, H, W_, K = forward.dims("S C O H Wd K")
stride = forward.integer("stride", 2, minimum=1)
pad = forward.integer("padding", 1)
Ho, Wo = forward.output_dims(Ho=(H - 1) * stride - 2 * pad + K, Wo=(W_ - 1) * stride - 2 * pad + K)
s, c, o, u, v, i, j = forward.indices(s=S, c=C, o=O, u=Ho, v=Wo, i=K, j=K)
A = forward.input("A", S, C, H, W_)
W = forward.param("W", C, O, K, K)
forward.output("Y", (s, o, u, v),
               Sum(A[s, c, (u + pad - i) / stride, (v + pad - j) / stride] * W[c, o, i, j], c, i, j))
