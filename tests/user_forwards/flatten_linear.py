"""Flatten then linear: every output reads all channels and positions of an image."""
from derive.engine.notation import Forward, Sum

forward = Forward("flatten_linear", __doc__)
S, C, H, W_, O = forward.dims("S C H Wd O")
s, c, h, w, o = forward.indices(s=S, c=C, h=H, w=W_, o=O)
X = forward.input("X", S, C, H, W_)
W = forward.param("W", O, C, H, W_)
b = forward.param("b", O)
forward.output("Y", (s, o), Sum(X[s, c, h, w] * W[o, c, h, w], c, h, w) + b[o])
