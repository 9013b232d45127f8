"""A per-feature gain on Z plus two offset vectors given as inputs (a layer may ask for only one of their gradients).

    Y_sj = Z_sj g_j + U_j + 3 V_j
"""
from derive.engine.notation import Forward

forward = Forward("two_offsets", "Z g plus two offsets U and 3 V, each an input.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
Z = forward.input("Z", S, D)
U = forward.input("U", D)
V = forward.input("V", D)
g = forward.param("g", D)
forward.output("Y", (s, j), Z[s, j] * g[j] + U[j] + 3 * V[j])
