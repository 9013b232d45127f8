"""A GRU cell, as torch.nn.GRUCell: gates in PyTorch's order r, z, n.

    A_su = Σ_k X_sk W_ih[u, k] + b_ih[u]          B_su = Σ_m h0_sm W_hh[u, m] + b_hh[u]     (u over the 3H rows)
    r = σ(A[:, 0:H] + B[:, 0:H]),   z = σ(A[:, H:2H] + B[:, H:2H])
    n = tanh(A[:, 2H:3H] + r ⊙ B[:, 2H:3H])
    h_sj = (1 − z_sj) n_sj + z_sj h0_sj

The input and hidden pre-activations stay apart (the reset gate scales the hidden one alone, as PyTorch).
1 − z is written σ(−u) (``keep``), not computed from z: where the update gate saturates (z → 1), 1 − z
cancels to nothing while σ(−u) keeps its digits, and so do the gradients that read it.
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

forward = Forward("gru_cell", __doc__)
S, I, H = forward.dims("S I H")
s, j, k, m, u = forward.indices(s=S, j=H, k=I, m=H, u=3 * H)
X = forward.input("X", S, I)
h0 = forward.input("h0", S, H, latex="h^{0}")
W_ih = forward.param("W_ih", 3 * H, I, latex=r"W^{ih}")
W_hh = forward.param("W_hh", 3 * H, H, latex=r"W^{hh}")
b_ih = forward.param("b_ih", 3 * H, latex=r"b^{ih}")
b_hh = forward.param("b_hh", 3 * H, latex=r"b^{hh}")


def sigmoid(x):
    return 1 / (1 + sp.exp(-x))


A = forward.let("A", (s, u), Sum(X[s, k] * W_ih[u, k], k) + b_ih[u])
B = forward.let("B", (s, u), Sum(h0[s, m] * W_hh[u, m], m) + b_hh[u])
r = forward.let("r", (s, j), sigmoid(A[s, j] + B[s, j]))
z = forward.let("z", (s, j), sigmoid(A[s, H + j] + B[s, H + j]))
keep = forward.let("keep", (s, j), sigmoid(-(A[s, H + j] + B[s, H + j])), latex=r"\bar{z}")
n = forward.let("n", (s, j), sp.tanh(A[s, 2 * H + j] + r[s, j] * B[s, 2 * H + j]))
forward.output("h", (s, j), keep[s, j] * n[s, j] + z[s, j] * h0[s, j])
