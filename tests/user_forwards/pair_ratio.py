"""Ratios of neighbouring pairs: Y_sj = X[s, 2j] / X[s, 2j + 1] (X > 0), Do = ⌊D/2⌋ derived.

Its gradient once absorbed a range bracket beside a read in a denominator: 0·(1/0) = nan.
"""
from derive.engine.notation import Forward

forward = Forward("pair_ratio", __doc__)
S, D = forward.dims("S D")
(Do,) = forward.output_dims("Do")
s, j = forward.indices(s=S, j=Do)
X = forward.input("X", S, D, positive=True)
forward.output("Y", (s, j), X[s, 2 * j] / X[s, 2 * j + 1])
