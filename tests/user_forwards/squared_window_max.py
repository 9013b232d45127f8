"""The square of a strided window's maximum (a power of a max: the derivation's LaTeX raises the max itself).

    Y_sct = (max_i X[s, c, 2t + i])²,  windows of 2, stride 2
"""
from derive.engine.notation import Forward, Max

forward = Forward("squared_window_max", __doc__)
S, C, L = forward.dims("S C L")
Lo, = forward.output_dims("Lo")
s, c, t, i = forward.indices(s=S, c=C, t=Lo, i=2)
X = forward.input("X", S, C, L)
forward.output("Y", (s, c, t), Max(X[s, c, 2 * t + i], i) ** 2)
