# Found by the fuzzer; was: refused at verify ("backward raises TypeError: ufunc 'bitwise_and'" or "disagrees with central differences"): an indicator [q+1 ∈ 0..D-1] added to a term is printed as `a + (m >= 0) & (m <= D - 1)` without parentheses.
"""Y = Σ_sj (X_sj / alpha + X_s,j-1): dX = (1/alpha + [q + 1 ∈ 0..D-1]) dY."""
from derive.engine.notation import Forward, Sum

forward = Forward("indicator_sum_precedence", __doc__)
S, D = forward.dims("S D")
alpha = forward.scalar("alpha", 0.5)
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("Y", (), Sum(X[s, j] / alpha + X[s, j - 1], s, j))
