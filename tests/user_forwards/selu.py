"""SELU: a scaled ELU, elementwise.

    Y_sj = λ X_sj                   if X_sj > 0
         = λ α (exp(X_sj) − 1)      otherwise
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("selu", "SELU: scale * (X if X > 0 else alpha (exp(X) - 1)), elementwise.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
scale = forward.scalar("scale", 1.0507009873554804934193349852946, latex=r"\lambda")
alpha = forward.scalar("alpha", 1.6732632423543772848170429916717, latex=r"\alpha")
X = forward.input("X", S, D)
forward.output(
    "Y", (s, j),
    sp.Piecewise((scale * X[s, j], X[s, j] > 0), (scale * alpha * (sp.exp(X[s, j]) - 1), True)),
)
