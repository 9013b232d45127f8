"""A causal 1-D convolution, the read running backwards (h − i): Y_soh = Σ_{c,i} X[s, c, h − i] W_coi."""
from derive.engine.notation import Forward, Sum

forward = Forward("causal_conv1d", __doc__)
S, C, O, T, K = forward.dims("S C O T K")
s, c, o, i, h = forward.indices(s=S, c=C, o=O, i=K, h=T)
X = forward.input("X", S, C, T)
W = forward.param("W", C, O, K)
forward.output("Y", (s, o, h), Sum(X[s, c, h - i] * W[c, o, i], c, i))
