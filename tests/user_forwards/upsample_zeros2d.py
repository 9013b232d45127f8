"""Zero-insertion upsampling in 2-D, its extent derived from the reads: factor·(H − 1) + 1."""
from derive.engine.notation import Forward

forward = Forward("upsample_zeros2d", __doc__)
S, C, H, W = forward.dims("S C H W")
factor = forward.integer("factor", 2, minimum=1)
Ho, Wo = forward.output_dims("Ho Wo")
s, c, u, v = forward.indices(s=S, c=C, u=Ho, v=Wo)
A = forward.input("A", S, C, H, W)
forward.output("Y", (s, c, u, v), 2 * A[s, c, u / factor, v / factor])
