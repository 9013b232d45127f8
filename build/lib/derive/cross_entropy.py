"""Categorical cross-entropy on probabilities X, mean over the batch.

    L = −(1/S) Σ_s Σ_c T_sc log(X_sc)        T: targets, each row sums to 1
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("cross_entropy", __doc__)
S, C = forward.dims("S C")
s, c = forward.indices(s=S, c=C)
X = forward.input("X", S, C, positive=True)
T = forward.const("T", S, C)
forward.output("L", (), -Sum(T[s, c] * sp.log(X[s, c]), s, c) / S)
