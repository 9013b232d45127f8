"""A max over a padded window of exp of the read (padding is no candidate): Y_st = max_k exp(X[s, 2t + k − 1]).

Its gradient routes dY · exp(X) at the arg-max: a gathered value inside a scatter.
"""
import sympy as sp

from derive.engine.notation import Forward, Max

forward = Forward("max_exp_pool", __doc__)
S, D = forward.dims("S D")
(To,) = forward.output_dims("To")
s, t = forward.indices(s=S, t=To)
(k,) = forward.indices(k=3)
X = forward.input("X", S, D, padding=(0, 1))
forward.output("Y", (s, t), Max(sp.exp(X[s, 2 * t + k - 1]), k))
