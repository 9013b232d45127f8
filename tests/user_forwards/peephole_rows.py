"""Peephole weights as two rows of one parameter, read at integer indices: Y = X ⊙ p[0] + p[1].

(Written to show failure kinds: an integer extent (2) was not a SymPy number, and the gradient
dp = δ(0, p) Σ_s X dY + δ(1, p) Σ_s dY had no lowering for a delta of an index and a number.)
"""
from derive.engine.notation import Forward

forward = Forward("peephole_rows", __doc__)
S, H = forward.dims("S H")
s, j = forward.indices(s=S, j=H)
X = forward.input("X", S, H)
p = forward.param("p", 2, H)
forward.output("Y", (s, j), X[s, j] * p[0, j] + p[1, j])
