# Found by the fuzzer; was: refused at verify ("backward disagrees with central differences, max difference 1.25"): dX = ([D-q-1 ∈ 0..D-1] + 1) dY_p, the indicator printed unparenthesised next to `+ 1` (int & bool computes silently wrong).
"""Y_s = Σ_k (X_s,D-1-k + X_sk)."""
from derive.engine.notation import Forward, Sum

forward = Forward("indicator_sum_precedence_reversed", __doc__)
S, D = forward.dims("S D")
s, k = forward.indices(s=S, k=D)
X = forward.input("X", S, D)
forward.output("Y", (s,), Sum(X[s, D - 1 - k] + X[s, k], k))
