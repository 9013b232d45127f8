"""The course's index-gymnastics examples (assignment sections 1–2), derived by the engine.

Each is a forward in index notation; ``python -m derive`` writes their
derivations to generated/examples/, and the tests check each closed form
against brute-force SymPy and against torch.autograd.

    ∂(x·a)/∂x = a                 ∂(bᵀXc)/∂X = b cᵀ            ∂(xᵀBx)/∂x = (B + Bᵀ)x
    ∂(QᵀQ)_ij/∂Q_mn = δ_in Q_mj + δ_jn Q_mi   (a rank-4 Jacobian, kept in index form)
    ∂tr(VXW)/∂X = Vᵀ Wᵀ           ∂‖w‖/∂w = w/‖w‖               ∂tr(S)/∂S = I
"""
import sympy as sp

from derive.engine.notation import Forward, Sum

TITLE = "Index gymnastics: the course's worked examples"


def dot():
    """Example 1: r = x · a."""
    f = Forward("dot", "Example 1: r = x · a = Σ_k x_k a_k.")
    (N,) = f.dims("N")
    (k,) = f.indices(k=N)
    x, a = f.input("x", N), f.const("a", N)
    f.output("r", (), Sum(x[k] * a[k], k))
    return f


def bilinear():
    """Example 2: s = bᵀ X c."""
    f = Forward("bilinear", "Example 2: s = bᵀ X c = Σ_p Σ_q b_p X_pq c_q.")
    M, N = f.dims("M N")
    p, q = f.indices(p=M, q=N)
    X, b, c = f.input("X", M, N), f.const("b", M), f.const("c", N)
    f.output("s", (), Sum(b[p] * X[p, q] * c[q], p, q))
    f.gradient_indices = "ij"
    return f


def quadratic_form():
    """Exercise 1: s = xᵀ B x."""
    f = Forward("quadratic_form", "Exercise 1: s = xᵀ B x = Σ_i Σ_j x_i B_ij x_j.")
    (N,) = f.dims("N")
    i, j = f.indices(i=N, j=N)
    x, B = f.input("x", N), f.const("B", N, N)
    f.output("s", (), Sum(x[i] * B[i, j] * x[j], i, j))
    return f


def gram():
    """Example 3: R = Qᵀ Q, the full Jacobian ∂R_ij/∂Q_mn."""
    f = Forward("gram", "Example 3: R = Qᵀ Q, R_ij = Σ_k Q_ki Q_kj; the Jacobian ∂R_ij/∂Q_mn.")
    M, N = f.dims("M N")
    i, j, k = f.indices(i=N, j=N, k=M)
    Q = f.input("Q", M, N)
    f.output("R", (i, j), Sum(Q[k, i] * Q[k, j], k))
    f.jacobian = True
    f.gradient_indices = "mn"
    return f


def trace_product():
    """Exercise 2: tr(V X W)."""
    f = Forward("trace_product", "Exercise 2: t = tr(V X W) = Σ_i Σ_j Σ_k V_ij X_jk W_ki.")
    A, B = f.dims("A B")
    i, j, k = f.indices(i=A, j=B, k=B)
    X = f.input("X", B, B)
    V, W = f.const("V", A, B), f.const("W", B, A)
    f.output("t", (), Sum(V[i, j] * X[j, k] * W[k, i], i, j, k))
    return f


def norm():
    """Exercise 3: ‖w‖ = √(wᵀw)."""
    f = Forward("norm", "Exercise 3: n = ‖w‖ = √(Σ_k w_k²).")
    (N,) = f.dims("N")
    (k,) = f.indices(k=N)
    w = f.input("w", N)
    squares = f.let("w2", (), Sum(w[k] ** 2, k), positive=True, latex=r"\|w\|^2")
    f.output("n", (), sp.sqrt(squares.base), positive=True, latex=r"\|w\|")
    return f


def trace():
    """Exercise 4: tr(S)."""
    f = Forward("trace", "Exercise 4: t = tr(S) = Σ_i S_ii.")
    (N,) = f.dims("N")
    (i,) = f.indices(i=N)
    S = f.input("S", N, N)
    f.output("t", (), Sum(S[i, i], i))
    f.gradient_indices = "pq"
    return f


def forwards():
    """The examples in the course's order."""
    out = [dot(), bilinear(), quadratic_form(), gram(), trace_product(), norm(), trace()]
    for f in out:
        f.source = "derive/examples.py"
    return out
