"""2-D max pooling over k×k windows, batch first, channels before height and width.

    Y_schw = max_{i,j} X[s, c, σh + i − p, σw + j − p]        i, j ∈ {0..k−1}

    X: (S, C, Hi, Wi), padded by p on the spatial axes (padding never wins);
    Y: (S, C, Ho, Wo), Ho = ⌊(Hi + 2p − k)/σ⌋ + 1 (derived from the reads)

The gradient goes to the first maximum of each window in row-major order, as in PyTorch.
"""
from derive.engine.notation import Forward, Max

forward = Forward("max_pool2d", __doc__)
S, C, Hi, Wi = forward.dims("S C Hi Wi")
Ho, Wo = forward.output_dims("Ho Wo")
k = forward.integer("kernel_size", 2, minimum=1, latex="k")
stride = forward.integer("stride", 2, minimum=1, latex=r"\sigma")
pad = forward.integer("padding", 0, latex="p")
s, c, h, w = forward.indices(s=S, c=C, h=Ho, w=Wo)
i, j = forward.indices(i=k, j=k)
X = forward.input("X", S, C, Hi, Wi, padding=(0, 0, pad, pad))
forward.output("Y", (s, c, h, w), Max(X[s, c, stride * h + i - pad, stride * w + j - pad], i, j))
