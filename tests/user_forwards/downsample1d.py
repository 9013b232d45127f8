"""Downsampling: every factor-th sample."""
from derive.engine.notation import Forward

forward = Forward("downsample1d", __doc__)
S, C, L = forward.dims("S C L")
factor = forward.integer("factor", 2, minimum=1)
Lo, = forward.output_dims("Lo")
s, c, u = forward.indices(s=S, c=C, u=Lo)
A = forward.input("A", S, C, L)
forward.output("Y", (s, c, u), A[s, c, factor * u])
