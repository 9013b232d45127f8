"""Reversed and zero-padded on both sides: a declared extent L + 2·pad read backwards (a derived extent could not
be, from a read whose output index runs backwards)."""
from derive.engine.notation import Forward
forward = Forward("reversed_padded", __doc__)
S, L = forward.dims("S L")
pad = forward.integer("pad", 1)
Lo, = forward.output_dims(Lo=L + 2 * pad)
s, u = forward.indices(s=S, u=Lo)
A = forward.input("A", S, L)
forward.output("Y", (s, u), A[s, L - 1 + pad - u])
