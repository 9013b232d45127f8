"""A select on a hyper-parameter alone whose branches read different indices: the branch taken is the whole
result, broadcast to the output's shape (it came out (1,) instead of (S,) when it lacked the axis s).

    Y_s = Σ_j (c_j if α > 1/3 else v_s)²,  α = 1/2 by default
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("scalar_select_branches", __doc__)
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
alpha = forward.scalar("alpha", 0.5)
c = forward.param("c", D)
v = forward.param("v", S)
forward.output("Y", (s,), Sum(sp.Piecewise((c[j], alpha > sp.Rational(1, 3)), (v[s], True)) ** 2, j))
