"""A scanning MLP (CMU 11-785): an MLP over windows of K samples taken every stride samples, i.e. a
strided 1-D convolution, a ReLU, then a per-position layer (a 1×1 convolution)."""
import sympy as sp
from derive.engine.notation import Forward, Sum

forward = Forward("scanning_mlp", __doc__)
S, C, L, K, M, O = forward.dims("S C L K M O")
stride = forward.integer("stride", 2, minimum=1)
T, = forward.output_dims("T")
s, c, t, k, m, o = forward.indices(s=S, c=C, t=T, k=K, m=M, o=O)
X = forward.input("X", S, C, L)
W1 = forward.param("W1", M, C, K)
W2 = forward.param("W2", O, M)
H = forward.let("H", (s, m, t), sp.Max(0, Sum(X[s, c, stride * t + k] * W1[m, c, k], c, k)))
forward.output("Y", (s, o, t), Sum(H[s, m, t] * W2[o, m], m))
