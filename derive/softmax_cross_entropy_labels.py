"""Softmax followed by cross-entropy, on logits X and integer class labels y (no one-hot rows).

    Z_s = Σ_k exp(X_sk)
    L   = −(1/S) Σ_s log softmax(X)[s, y_s] = (1/S) Σ_s (log Z_s − X[s, y_s])

The engine shifts Z by the row's maximum (no overflow at large logits).

The label's logit is a gather, X[s, y_s]; its gradient puts −1/S at column y_s
of row s, beside softmax(X)/S: dX = (softmax(X) − [q = y_p])/S.
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("softmax_cross_entropy_labels", __doc__)
S, C = forward.dims("S C")
s, k = forward.indices(s=S, k=C)
X = forward.input("X", S, C)
y = forward.index_array("y", S, of=C)
Z = forward.let("Z", (s,), Sum(sp.exp(X[s, k]), k))
forward.output("L", (), Sum(sp.log(Z[s]) - X[s, y[s]], s) / S)
