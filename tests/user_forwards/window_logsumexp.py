"""A log-sum-exp over a sliding window, reads past the end zero (exp(0) = 1): Y_sh = log Σ_i exp(X[s, h + i]).

Sifting once captured the window index of the normaliser's own sum (a wrong gradient).
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("window_logsumexp", __doc__)
S, T = forward.dims("S T")
k = forward.integer("k", 3, minimum=1)
s, h = forward.indices(s=S, h=T)
(i,) = forward.indices(i=k)
X = forward.input("X", S, T)
forward.output("Y", (s, h), sp.log(Sum(sp.exp(X[s, h + i]), i)))
