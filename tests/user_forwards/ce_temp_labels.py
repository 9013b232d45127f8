"""Cross-entropy with a temperature on integer labels (its dX once multiplied exp(m/τ) back outside a difference
and overflowed from X/τ ≈ 709)."""
import sympy as sp
from derive.engine.notation import Forward, Sum
forward = Forward("ce_temp_labels", __doc__)
S, C = forward.dims("S C")
s, k = forward.indices(s=S, k=C)
tau = forward.scalar("tau", 0.5)
X = forward.input("X", S, C)
y = forward.index_array("y", S, of=C)
Z = forward.let("Z", (s,), Sum(sp.exp(X[s, k] / tau), k))
forward.output("L", (), Sum(sp.log(Z[s]) - X[s, y[s]] / tau, s) / S)
