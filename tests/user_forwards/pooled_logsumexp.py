"""Log-sum-exp of a max pool's outputs: its gradient is a sum of exponentials routed to each window's arg-max,
shifted by the maximum the forward took (it was exp(m)·exp(−M) = inf·0 at inputs near 1000).

    Y_s = log Σ_{c,t} exp(max_i X[s, c, 2t + i]),  windows of 2, stride 2
"""
import sympy as sp
from derive.engine.notation import Forward, Max, Sum
forward = Forward("pooled_logsumexp", __doc__)
S, C, L = forward.dims("S C L")
Lo, = forward.output_dims("Lo")
s, c, t, i = forward.indices(s=S, c=C, t=Lo, i=2)
X = forward.input("X", S, C, L)
forward.output("Y", (s,), sp.log(Sum(sp.exp(Max(X[s, c, 2 * t + i], i)), c, t)))
