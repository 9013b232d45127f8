"""Nested sums written with SymPy's own Sum, a ReLU in the inner one: Y_s = Σ_j v_j Σ_k max(0, X_sjk) w_k."""
import sympy as sp

from derive.engine.notation import Forward

forward = Forward("nested_relu_sums", __doc__)
S, D, K = forward.dims("S D K")
s, j, k = forward.indices(s=S, j=D, k=K)
X = forward.input("X", S, D, K)
w = forward.param("w", K)
v = forward.param("v", D)
forward.output("Y", (s,), sp.Sum(v[j] * sp.Sum(sp.Max(0, X[s, j, k]) * w[k], (k, 0, K - 1)), (j, 0, D - 1)))
