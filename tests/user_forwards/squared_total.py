"""The square of the sum of all inputs, as a loss (its gradient is one number, a reduction, everywhere).

    L = (Σ_sj X_sj)²
"""
from derive.engine.notation import Forward, Sum

forward = Forward("squared_total", "The square of the sum of all inputs.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("L", (), Sum(X[s, j], s, j) ** 2)
