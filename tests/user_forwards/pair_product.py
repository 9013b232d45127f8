"""A tensor sized by a dimension expression: X has 2·P features; each output multiplies a pair."""
from derive.engine.notation import Forward

forward = Forward("pair_product", __doc__)
S, P = forward.dims("S P")
s, p = forward.indices(s=S, p=P)
X = forward.input("X", S, 2 * P)
forward.output("Y", (s, p), X[s, 2 * p] * X[s, 2 * p + 1])
