"""The score of each row's labelled class, scaled by a learned gain per class.

    Y_s = g[y_s] · X[s, y_s]
"""
from derive.engine.notation import Forward

forward = Forward("label_gain", "Each row's labelled score times a learned per-class gain.")
S, C = forward.dims("S C")
s, = forward.indices(s=S)
X = forward.input("X", S, C)
y = forward.index_array("y", S, of=C)
g = forward.param("g", C)
forward.output("Y", (s,), g[y[s]] * X[s, y[s]])
