"""A max over a window of a read scaled by a per-channel gain (negative gains pick minima), then tanh:

    Y_sch = tanh(max_i g_c X[s, c, σh + i − p])       X padded by p (padding never a candidate)
"""
import sympy as sp

from derive.engine.notation import Forward, Max

forward = Forward("scaled_max_pool", __doc__)
S, C, Hi = forward.dims("S C Hi")
(Ho,) = forward.output_dims("Ho")
k = forward.integer("kernel_size", 3, minimum=1)
stride = forward.integer("stride", 2, minimum=1)
pad = forward.integer("padding", 1)
s, c, h = forward.indices(s=S, c=C, h=Ho)
(i,) = forward.indices(i=k)
X = forward.input("X", S, C, Hi, padding=(0, 0, pad))
g = forward.param("g", C)
forward.output("Y", (s, c, h), sp.tanh(Max(g[c] * X[s, c, stride * h + i - pad], i)))
