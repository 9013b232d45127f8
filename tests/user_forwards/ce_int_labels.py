"""Cross-entropy of logits X against integer class labels y (no one-hot), mean over the batch.

    Z_s = Σ_k exp(X_sk)
    L   = −(1/S) Σ_s log softmax(X)[s, y_s] = (1/S) Σ_s (log Z_s − X[s, y_s])
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("ce_int_labels", "Cross-entropy of logits X against integer labels y, mean over the batch.")
S, C = forward.dims("S C")
s, k = forward.indices(s=S, k=C)
X = forward.input("X", S, C)
y = forward.index_array("y", S, of=C)
Z = forward.let("Z", (s,), Sum(sp.exp(X[s, k]), k))
forward.output("L", (), Sum(sp.log(Z[s]) - X[s, y[s]], s) / S)
