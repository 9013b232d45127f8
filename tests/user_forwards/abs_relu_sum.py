"""The L1 norm of a ReLU layer's outputs: a sum holding a max, inside an |·| (its condition once came out of the sum, j left free)."""
import sympy as sp
from derive.engine.notation import Forward, Sum
forward = Forward("abs_relu_sum", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
w = forward.param("w", D)
forward.output("L", (), Sum(sp.Abs(Sum(sp.Max(0, X[s, j]) * w[j], j)), s))
