"""An LSTM cell, as torch.nn.LSTMCell: gates in PyTorch's order i, f, g, o; outputs h and c.

    A_sr  = Σ_k X_sk W_ih[r, k] + Σ_m h0_sm W_hh[r, m] + b_ih[r] + b_hh[r]     (r over the 4H gate rows)
    i = σ(A[:, 0:H]),  f = σ(A[:, H:2H]),  g = tanh(A[:, 2H:3H]),  o = σ(A[:, 3H:4H])
    c_sj  = f_sj c0_sj + i_sj g_sj
    h_sj  = o_sj tanh(c_sj)

Two outputs: the backward takes dh and dc (either may be omitted: zero). The pre-activations A are read by
every gate, so the derivation gives them a gradient of their own, dA, once; dX, dh0 and the weights' gradients
are products with it.
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("lstm_cell", __doc__)
S, I, H = forward.dims("S I H")
s, j, k, m, r = forward.indices(s=S, j=H, k=I, m=H, r=4 * H)
X = forward.input("X", S, I)
h0 = forward.input("h0", S, H, latex="h^{0}")
c0 = forward.input("c0", S, H, latex="c^{0}")
W_ih = forward.param("W_ih", 4 * H, I, latex=r"W^{ih}")
W_hh = forward.param("W_hh", 4 * H, H, latex=r"W^{hh}")
b_ih = forward.param("b_ih", 4 * H, latex=r"b^{ih}")
b_hh = forward.param("b_hh", 4 * H, latex=r"b^{hh}")


def sigmoid(x):
    return 1 / (1 + sp.exp(-x))


A = forward.let("A", (s, r), Sum(X[s, k] * W_ih[r, k], k) + Sum(h0[s, m] * W_hh[r, m], m) + b_ih[r] + b_hh[r])
i = forward.let("i", (s, j), sigmoid(A[s, j]))
f = forward.let("f", (s, j), sigmoid(A[s, H + j]))
g = forward.let("g", (s, j), sp.tanh(A[s, 2 * H + j]))
o = forward.let("o", (s, j), sigmoid(A[s, 3 * H + j]))
cell = forward.let("cell", (s, j), f[s, j] * c0[s, j] + i[s, j] * g[s, j], latex=r"\tilde{c}")
forward.output("h", (s, j), o[s, j] * sp.tanh(cell[s, j]))
forward.output("c", (s, j), cell[s, j])
