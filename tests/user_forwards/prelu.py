"""PReLU: ReLU with a learned negative slope per feature.

    Y_sj = max(0, X_sj) + a_j min(0, X_sj)
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("prelu", "PReLU with a learned negative slope a_j per feature.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
a = forward.param("a", D)
forward.output("Y", (s, j), sp.Max(0, X[s, j]) + a[j] * sp.Min(0, X[s, j]))
