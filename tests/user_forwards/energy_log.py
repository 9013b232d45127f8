"""An energy times its log: a scaled sum of squares inside a function and beside it.

    r_s = Σ_j X_sj²,   Y_s = r_s log(r_s + ε)
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("energy_log", "Each row's energy times the log of it.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
eps = forward.scalar("eps", 0.5)
X = forward.input("X", S, D)
r = forward.let("r", (s,), Sum(X[s, j] ** 2, j))
forward.output("Y", (s,), r[s] * sp.log(r[s] + eps))
