"""A weighted row sum of ReLU: Y_s = Σ_j max(0, X_sj) w_j (a select inside a sum: its condition stays in the sum)."""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("relu_row_sum", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
w = forward.param("w", D)
forward.output("Y", (s,), Sum(sp.Max(0, X[s, j]) * w[j], j))
