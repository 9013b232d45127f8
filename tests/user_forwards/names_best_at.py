"""max_exp_pool with the input named best: Y_st = max_k exp(best[s, 2t + k - 1]) * g_s."""
import sympy as sp
from derive.engine.notation import Forward, Max

forward = Forward("names_best_at", __doc__)
S, D = forward.dims("S D")
(To,) = forward.output_dims("To")
s, t = forward.indices(s=S, t=To)
(k,) = forward.indices(k=3)
X = forward.input("best", S, D, padding=(0, 1))
g = forward.param("at", S)
forward.output("Y", (s, t), Max(sp.exp(X[s, 2 * t + k - 1]), k) * g[s])
