"""A 1-D transposed convolution (stride, padding, output padding), W (in, out, k) as torch: each input
position scatters its window into the output, read back as A at (u + padding − k)/stride."""
from derive.engine.notation import Forward, Sum

forward = Forward("conv_transpose1d", __doc__)
S, C, O, L, K = forward.dims("S C O L K")
stride = forward.integer("stride", 2, minimum=1)
pad = forward.integer("padding", 1)
extra = forward.integer("output_padding", 1)
Lo, = forward.output_dims(Lo=(L - 1) * stride - 2 * pad + K + extra)
s, c, o, u, k = forward.indices(s=S, c=C, o=O, u=Lo, k=K)
A = forward.input("A", S, C, L)
W = forward.param("W", C, O, K)
b = forward.param("b", O)
forward.output("Y", (s, o, u), Sum(A[s, c, (u + pad - k) / stride] * W[c, o, k], c, k) + b[o])
