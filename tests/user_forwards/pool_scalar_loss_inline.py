# Found by the fuzzer; was: refused at verify ("backward: dX = _max_pool_scatter(X, dY, (stride,), ...): raises ValueError: Cannot set flags on array scalars."): an inline max pool summed to a scalar loss (same family as pool_scalar_loss.py; Torch variant: "_grid_scatter(...): AttributeError: 'float' object has no attribute 'new_zeros'").
"""Y = Σ_sct max_i X_s,c,2t+i."""
from derive.engine.notation import Forward, Max, Sum

forward = Forward("pool_scalar_loss_inline", __doc__)
S, C, L = forward.dims("S C L")
(Lo,) = forward.output_dims("Lo")
stride = forward.integer("stride", 2, minimum=1)
s, c, t = forward.indices(s=S, c=C, t=Lo)
(i,) = forward.indices(i=2)
X = forward.input("X", S, C, L)
forward.output("Y", (), Sum(Max(X[s, c, stride * t + i], i), s, c, t))
