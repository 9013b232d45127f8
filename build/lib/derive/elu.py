"""ELU with parameter alpha, elementwise.

    Y_sj = X_sj                    if X_sj > 0
         = α (exp(X_sj) − 1)       otherwise
"""
import sympy as sp

from derive.engine.notation import Forward

forward = Forward("elu", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
alpha = forward.scalar("alpha", 1.0, latex=r"\alpha")
X = forward.input("X", S, D)
forward.output("Y", (s, j), sp.Piecewise((X[s, j], X[s, j] > 0), (alpha * (sp.exp(X[s, j]) - 1), True)))
