"""Mean squared error, halved, mean over the batch.

    L = 1/(2S) Σ_s Σ_j (X_sj − T_sj)²        X: predictions, T: targets
"""
from derive.engine.notation import Forward, Sum

forward = Forward("mse", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
T = forward.const("T", S, D)
forward.output("L", (), Sum((X[s, j] - T[s, j]) ** 2, s, j) / (2 * S))
