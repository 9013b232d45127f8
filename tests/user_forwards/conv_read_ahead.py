"""A correlation that reads ahead by 3 (reads past the end are zero): Y[s,o,h] = sum_{c,i} X[s,c,h+i+3] W[o,c,i]."""
from derive.engine.notation import Forward, Sum

forward = Forward("conv_read_ahead", __doc__)
S, C, O, T, K = forward.dims("S C O T K")
s, c, o, i, h = forward.indices(s=S, c=C, o=O, i=K, h=T)
X = forward.input("X", S, C, T)
W = forward.param("W", O, C, K)
forward.output("Y", (s, o, h), Sum(X[s, c, h + i + 3] * W[o, c, i], c, i))
