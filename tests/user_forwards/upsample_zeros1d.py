"""Zero-insertion upsampling by a factor: each sample followed by factor − 1 zeros (length factor·L)."""
from derive.engine.notation import Forward

forward = Forward("upsample_zeros1d", __doc__)
S, C, L = forward.dims("S C L")
factor = forward.integer("factor", 2, minimum=1)
Lo, = forward.output_dims(Lo=factor * L)
s, c, u = forward.indices(s=S, c=C, u=Lo)
A = forward.input("A", S, C, L)
forward.output("Y", (s, c, u), A[s, c, u / factor])
