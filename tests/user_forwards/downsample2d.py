"""2-D downsampling: every factor-th row and column, starting at the first."""
from derive.engine.notation import Forward

forward = Forward("downsample2d", __doc__)
S, C, H, W = forward.dims("S C H W")
factor = forward.integer("factor", 2, minimum=1)
Ho, Wo = forward.output_dims("Ho Wo")
s, c, u, v = forward.indices(s=S, c=C, u=Ho, v=Wo)
A = forward.input("A", S, C, H, W)
forward.output("Y", (s, c, u, v), A[s, c, factor * u, factor * v])
