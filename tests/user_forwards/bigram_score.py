"""A bigram table's score for each pair of token ids (a read through two index arrays).

    Y_s = W[a_s, b_s]        (dW_pq = Σ_s [a_s = p][b_s = q] dY_s: one scatter-add on both axes)
"""
from derive.engine.notation import Forward

forward = Forward("bigram_score", "The score of each (previous, next) token pair in a learned bigram table.")
S, V = forward.dims("S V")
s, = forward.indices(s=S)
a = forward.index_array("a", S, of=V)
b = forward.index_array("b", S, of=V)
W = forward.param("W", V, V)
forward.output("Y", (s,), W[a[s], b[s]])
