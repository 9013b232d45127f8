"""GLU as torch.nn.functional.glu: the first half of the features gated by the sigmoid of the second half."""
import sympy as sp

from derive.engine.notation import Forward

forward = Forward("glu_half", __doc__)
S, P = forward.dims("S P")
s, j = forward.indices(s=S, j=P)
X = forward.input("X", S, 2 * P)
forward.output("Y", (s, j), X[s, j] / (1 + sp.exp(-X[s, j + P])))
