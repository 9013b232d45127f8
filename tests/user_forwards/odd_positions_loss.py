"""A loss over every other feature, odd positions: L = sum_{s,h} X[s, 2h + 1]."""
from derive.engine.notation import Forward, Sum

forward = Forward("odd_positions_loss", __doc__)
S, T = forward.dims("S T")
(Ho,) = forward.output_dims("Ho")
s, h = forward.indices(s=S, h=Ho)
X = forward.input("X", S, T)
forward.output("L", (), Sum(X[s, 2 * h + 1], s, h))
