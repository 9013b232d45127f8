# Found by the fuzzer; was: refused at verify ("backward: dX = -(dX_exp**2*((D - 1 - _mesh(...)[0] >= 0) & (...) - 1) + ...: raises TypeError: ufunc 'bitwise_and'"): same printer precedence bug as indicator_sum_precedence.py, with no sum: a reversed read inside tanh.
"""Y_sj = tanh(X_s,D-1-j c_j)."""
import sympy as sp

from derive.engine.notation import Forward

forward = Forward("indicator_precedence_reversed_read", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
c = forward.param("c", D)
forward.output("Y", (s, j), sp.tanh(X[s, D - 1 - j] * c[j]))
