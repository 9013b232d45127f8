"""The largest of two neighbouring differences: Y_sh = max_i (X[s, h + i] − X[s, h + i + 1]), i ∈ {0, 1}.

The arg-max routes two deltas of opposite sign (one scatter each).
"""
from derive.engine.notation import Forward, Max

forward = Forward("max_of_difference", __doc__)
S, T = forward.dims("S T")
(To,) = forward.output_dims("To")
s, h = forward.indices(s=S, h=To)
(i,) = forward.indices(i=2)
X = forward.input("X", S, T)
forward.output("Y", (s, h), Max(X[s, h + i] - X[s, h + i + 1], i))
