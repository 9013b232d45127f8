"""A bag of embeddings: the sum of the rows of E that each bag's L token ids name.

    Y_bj = Σ_l E[t_bl, j]
"""
from derive.engine.notation import Forward, Sum

forward = Forward("embedding_bag", "The sum of the embeddings of each bag's token ids.")
B, L, V, D = forward.dims("B L V D")
b, l, j = forward.indices(b=B, l=L, j=D)
t = forward.index_array("t", B, L, of=V)
E = forward.param("E", V, D)
forward.output("Y", (b, j), Sum(E[t[b, l], j], l))
