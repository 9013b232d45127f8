"""The mean over the batch of the summed features, as a loss (its gradient does not depend on X).

    L = Σ_sj X_sj / S
"""
from derive.engine.notation import Forward, Sum

forward = Forward("mean_output", "The mean over the batch of the summed features.")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("L", (), Sum(X[s, j], s, j) / S)
