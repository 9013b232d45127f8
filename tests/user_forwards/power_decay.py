"""A decay with a rational base, elementwise.

    Y_sj = (2/3)^{X_sj}
"""
import sympy as sp

from derive.engine.notation import Forward

forward = Forward("power_decay", "(2/3) to the power X, elementwise.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), sp.Rational(2, 3) ** X[s, j])
