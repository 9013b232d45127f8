# Symptom (a refusal, the commonest in the fuzz runs): "print: ... δ(j + 1, q): a delta of index expressions that no scatter routes" -- a shifted/reversed read inside max/min/Piecewise leaves its delta inside a select; forward_difference (no select) derives.
"""Y_sj = max(X_s,j+1, X_sj): a shifted read inside a max."""
import sympy as sp
from derive.engine.notation import Forward

forward = Forward("shifted_read_in_max", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), sp.Max(X[s, j + 1], X[s, j]))
