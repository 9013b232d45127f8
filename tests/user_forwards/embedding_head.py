"""An embedding's first D − 1 features, scaled by a learned gain: a gather beside a plain index over part of its
axis (the kernel once took the whole axis; the gain's gradient was refused)."""
from derive.engine.notation import Forward

forward = Forward("embedding_head", __doc__)
S, C, D = forward.dims("S C D")
s, j = forward.indices(s=S, j=D - 1)
E = forward.input("E", C, D)
g = forward.param("g", D - 1)
t = forward.index_array("t", S, of=C)
forward.output("Y", (s, j), E[t[s], j] * g[j])
