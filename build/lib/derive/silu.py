"""SiLU (swish), elementwise: X times its sigmoid.

    Y_sj = X_sj / (1 + exp(−X_sj))
"""
import sympy as sp

from derive.engine.notation import Forward

forward = Forward("silu", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), X[s, j] / (1 + sp.exp(-X[s, j])))
