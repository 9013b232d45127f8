"""Row L1 norms through a let: a_sj = |X_sj|, Y_s = Σ_j a_sj."""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("l1_rows", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
a = forward.let("a", (s, j), sp.Abs(X[s, j]))
forward.output("Y", (s,), Sum(a[s, j], j))
