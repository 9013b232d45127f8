"""2-D convolution (cross-correlation, as PyTorch's conv2d), batch first, channels before height and width.

    Y_sohw = Σ_{c,i,j} X[s, c, σh + i − p, σw + j − p] W_ocij + b_o

    X: (S, C, Hi, Wi), zero-padded by p on both spatial axes; W: (O, C, KH, KW); b: (O,)
    Y: (S, O, Ho, Wo), Ho = ⌊(Hi + 2p − KH)/σ⌋ + 1 (derived from the reads)

σ is the stride, p the padding.
"""
from derive.engine.notation import Forward, Sum

forward = Forward("conv2d", __doc__)
S, C, O, Hi, Wi, KH, KW = forward.dims("S C O Hi Wi KH KW")
Ho, Wo = forward.output_dims("Ho Wo")
stride = forward.integer("stride", 1, minimum=1, latex=r"\sigma")
pad = forward.integer("padding", 0, latex="p")
s, c, o, i, j, h, w = forward.indices(s=S, c=C, o=O, i=KH, j=KW, h=Ho, w=Wo)
X = forward.input("X", S, C, Hi, Wi, padding=(0, 0, pad, pad))
W = forward.param("W", O, C, KH, KW)
b = forward.param("b", O)
forward.output("Y", (s, o, h, w),
               Sum(X[s, c, stride * h + i - pad, stride * w + j - pad] * W[o, c, i, j], c, i, j) + b[o])
