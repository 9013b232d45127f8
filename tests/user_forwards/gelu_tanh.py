"""GELU, tanh approximation, elementwise.

    Y_sj = 0.5 X_sj (1 + tanh(√(2/π) (X_sj + 0.044715 X_sj³)))
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("gelu_tanh", "GELU, tanh approximation 0.5 X (1 + tanh(sqrt(2/pi)(X + 0.044715 X^3))).")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output(
    "Y", (s, j),
    0.5 * X[s, j] * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (X[s, j] + 0.044715 * X[s, j] ** 3))),
)
