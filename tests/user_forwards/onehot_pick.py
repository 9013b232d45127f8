"""A label's logit written with a one-hot delta."""
import sympy as sp
from derive.engine.notation import Forward, Sum
forward = Forward("onehot_pick", __doc__)
S, C = forward.dims("S C")
s, j = forward.indices(s=S, j=C)
X = forward.input("X", S, C)
y = forward.index_array("y", S, of=C)
forward.output("L", (), Sum(sp.tanh(X[s, j]) * sp.KroneckerDelta(j, y[s]), s, j) / S)
