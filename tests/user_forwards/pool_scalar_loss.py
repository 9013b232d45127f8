# Found by the fuzzer; was: refused at verify ("pool_scalar_loss_backward: dX = _max_pool_scatter(X, dY, ...): raises ValueError: cannot broadcast a non-scalar to a scalar array"): a max pool kept as a let, summed to a scalar loss; the arg-max scatter gets the scalar dY.
"""Y = Σ_sct max_i X_s,c,t+i: a pool kept as an intermediate, summed to a scalar loss."""
from derive.engine.notation import Forward, Max, Sum

forward = Forward("pool_scalar_loss", __doc__)
S, C, L = forward.dims("S C L")
(Lo,) = forward.output_dims("Lo")
s, c, t = forward.indices(s=S, c=C, t=Lo)
(i,) = forward.indices(i=2)
X = forward.input("X", S, C, L)
P = forward.let("P", (s, c, t), Max(X[s, c, t + i], i))
forward.output("Y", (), Sum(P[s, c, t], s, c, t))
