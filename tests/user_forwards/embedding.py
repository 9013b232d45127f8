"""An embedding layer: row t_s of the table E for each token id t_s.

    Y_sj = E[t_s, j]        (the gradient dE_qj = Σ_s [t_s = q] dY_sj is a scatter-add)
"""
from derive.engine.notation import Forward

forward = Forward("embedding", "An embedding lookup: row t_s of the table E for each token id.")
S, V, D = forward.dims("S V D")
s, j = forward.indices(s=S, j=D)
t = forward.index_array("t", S, of=V)
E = forward.param("E", V, D)
forward.output("Y", (s, j), E[t[s], j])
