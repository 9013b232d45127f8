"""Total variation along the features, X[s, D] reading zero: L = Σ_{s,j} (X[s, j+1] − X[s, j])² / S.

Its gradient holds a range bracket [q − 1 ∈ 0..D−1] that no read absorbs (printed as a mask).
"""
from derive.engine.notation import Forward, Sum

forward = Forward("tv_loss", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("L", (), Sum((X[s, j + 1] - X[s, j]) ** 2, s, j) / S)
