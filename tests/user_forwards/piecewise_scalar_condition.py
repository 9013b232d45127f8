# Found by the fuzzer; was: refused at verify: the Torch forward prints torch.where(alpha > 1/2, ...) with a Python bool as condition -> "raises TypeError: where() received an invalid combination of arguments". A Piecewise whose condition holds scalars only.
"""h0 = Σ_sj max(X_s,j-1 if alpha > 1/2 else v_s, sign(alpha)) / S; Y_s = Σ_j max(h0, X_sj)."""
import sympy as sp
from derive.engine.notation import Forward, Sum
forward = Forward("piecewise_scalar_condition", __doc__)
S, D = forward.dims("S D")
alpha = forward.scalar("alpha", 2.0)
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
v = forward.param("v", S)
h0 = forward.let("h0", (), Sum(sp.Max(sp.Piecewise((X[s, j - 1], alpha > sp.Rational(1, 2)), (v[s], True)), sp.sign(alpha)), s, j) / S)
forward.output("Y", (s,), Sum(sp.Max(h0.base, X[s, j]), j))
