"""Two decays with rational bases, summed (SymPy's simplify folds their gradient into one log).

    Y_sj = (2/3)^{X_sj} + (3/5)^{X_sj}
"""
import sympy as sp

from derive.engine.notation import Forward

forward = Forward("two_decays", "(2/3)^X + (3/5)^X, elementwise.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), sp.Rational(2, 3) ** X[s, j] + sp.Rational(3, 5) ** X[s, j])
