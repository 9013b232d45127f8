"""A pooled value's complementary error function, summed: erfc′ is an exponential, so the gradient is a sum of
exponentials routed to each window's arg-max (a sum the max-shift must leave alone).

    Y = Σ_{s,c,t} erfc(max_i X[s, c, 2t + i]),  windows of 2, stride 2
"""
import sympy as sp

from derive.engine.notation import Forward, Max, Sum

forward = Forward("pooled_erfc", __doc__)
S, C, L = forward.dims("S C L")
Lo, = forward.output_dims("Lo")
s, c, t, i = forward.indices(s=S, c=C, t=Lo, i=2)
X = forward.input("X", S, C, L)
forward.output("Y", (), Sum(sp.erfc(Max(X[s, c, 2 * t + i], i)), s, c, t))
