# Found by the fuzzer; was: "derive: internal error: AttributeError: 'NoneType' object has no attribute 'strip'" (emit._docstring): a forward file without a module docstring passes __doc__ = None.
import sympy as sp

from derive.engine.notation import Forward

forward = Forward("no_docstring", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
forward.output("Y", (s, j), sp.tanh(X[s, j]))
