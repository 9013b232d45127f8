"""Lowering and rendering golden tests for the known traps, each checked numerically as well."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch

from derive import registry
from derive.engine.backends import BACKENDS
from derive.engine.errors import DeriveError
from derive.engine.ir import Array, Kernel, Statement
from derive.engine.kernel import validate
from derive.engine.lower import Lowering
from derive.engine.normal_forms import to_piecewise
from derive.engine.render import Renderer
from derive.helpers import numpy_helpers

P, Q, K, R = sp.symbols("P Q K R", integer=True, positive=True)
p, q, k, r = sp.Idx("p", P), sp.Idx("q", Q), sp.Idx("k", K), sp.Idx("r", R)
A, B, C, D = (sp.IndexedBase(n, real=True) for n in "ABCD")
GENERATED = Path(__file__).resolve().parents[1] / "generated"


def statement(st, backend="numpy") -> str:
    """The lines one statement lowers and renders to."""
    b = BACKENDS[backend]
    return "\n".join(Renderer(b).lines(Lowering(b.caps).statement(st)))


def run(code: str, **arrays):
    env = {**vars(numpy_helpers), "np": np, **arrays}  # the helpers rendered code may call (_matmul, ...)
    exec(code, env)
    return env


def loops(shape, fn):
    out = np.zeros(shape)
    for ix in np.ndindex(shape):
        out[ix] = fn(*ix)
    return out


def test_gemm_with_permuted_output_uses_transposes():
    # out_qp = Σ_k A_pk B_kq  is (A B)ᵀ = Bᵀ Aᵀ (sympy#30395 gets such axis orders wrong).
    st = Statement(D[q, p], sp.Sum(A[p, k] * B[k, q], (k, 0, K - 1)))
    code = statement(st)
    assert code == "D = _matmul(B.T, A.T)"
    a, b = np.random.rand(3, 4), np.random.rand(4, 5)
    np.testing.assert_allclose(run(code, A=a, B=b)["D"], (a @ b).T)


def test_einsum_subscripts_come_from_our_indices():
    st = Statement(D[r, p], sp.Sum(A[p, k] * B[k, q] * C[q, r], (k, 0, K - 1), (q, 0, Q - 1)))
    code = statement(st)
    assert code == "D = np.einsum('pk,kq,qr->rp', A, B, C)"
    a, b, c = np.random.rand(2, 3), np.random.rand(3, 4), np.random.rand(4, 5)
    ref = loops((5, 2), lambda i, j: sum(a[j, x] * b[x, y] * c[y, i] for x in range(3) for y in range(4)))
    np.testing.assert_allclose(run(code, A=a, B=b, C=c)["D"], ref)


def test_broadcast_of_a_row_reduction():
    # out_pq = A_pq − Σ_k A_pk : the reduction is a column, padded with None.
    st = Statement(D[p, q], A[p, q] - sp.Sum(A[p, k], (k, 0, Q - 1)).xreplace({k: sp.Idx("k", Q)}))
    code = statement(st)
    assert code == "D = A - A.sum(axis=1)[:, None]"
    a = np.random.rand(3, 4)
    np.testing.assert_allclose(run(code, A=a)["D"], a - a.sum(1, keepdims=True))


def test_diagonal_and_torch_vocabulary():
    st = Statement(D[p], A[p, p])
    assert statement(st) == "D = np.einsum('pp->p', A)"
    st = Statement(D[p, q], sp.Piecewise((A[p, q], A[p, q] > B[p, q]), (0, True)) * B[p, q]
                   + sp.Sum(A[p, k], (k, 0, K - 1)) * sp.exp(B[p, q]))
    code = statement(st, "torch")
    assert "torch.where" in code and ".sum(dim=1)[:, None]" in code and "np." not in code


def test_a_select_against_a_threshold_is_one_pass_in_torch():
    """v where x > c else 0 (ReLU's gradient) lowers to one operation, threshold_backward in Torch: the values
    where() gives, at the threshold (0) and on each side."""
    st = Statement(D[p, q], sp.Piecewise((B[p, q], A[p, q] > sp.Rational(1, 2)), (0, True)))
    code = statement(st, "torch")
    assert code == "D = torch.ops.aten.threshold_backward(B, A, 1/2)"
    a = torch.tensor([[-1.0, 0.5, 0.6, 2.0]], dtype=torch.float64)
    b = torch.tensor([[3.0, 4.0, 5.0, 6.0]], dtype=torch.float64)
    env = {"torch": torch, "A": a, "B": b}
    exec(code, env)
    assert torch.equal(env["D"], torch.where(a > 0.5, b, 0.0))
    assert statement(st) == "D = _masked(B, A, 1/2)"
    np.testing.assert_array_equal(run(statement(st), A=a.numpy(), B=b.numpy())["D"], np.where(a > 0.5, b, 0))
    # inf where the mask is 0: the select's 0, not inf·0 = nan
    np.testing.assert_array_equal(run(statement(st), A=a.numpy(), B=np.full((1, 4), np.inf))["D"],
                                  [[0, 0, np.inf, np.inf]])


def test_expm1_in_torch():
    # SymPy's own TorchPrinter has no expm1.
    from sympy.codegen.cfunctions import expm1
    st = Statement(D[p], expm1(A[p]))
    assert statement(st, "torch") == "D = torch.expm1(A)"


def test_max_differentiates_like_pytorch_relu():
    x = sp.IndexedBase("x", real=True)[p]
    assert sp.diff(sp.Max(0, x), x) == sp.Heaviside(x)           # SymPy: 1/2 at 0
    d = sp.diff(to_piecewise(sp.Max(0, x)), x)
    assert d.subs(x, 0) == 0 and d.subs(x, 1) == 1                # ours: 0 at 0, as PyTorch
    assert to_piecewise(sp.Heaviside(x)).subs(x, 0) == 0
    relu = importlib.import_module("generated.numpy.relu")
    X = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(relu.relu_backward(np.ones_like(X), X=X), [[0.0, 0.0, 1.0]])
    Xt = torch.tensor(X, requires_grad=True)
    (g,) = torch.autograd.grad(torch.relu(Xt).sum(), Xt)
    np.testing.assert_array_equal(g.numpy(), [[0.0, 0.0, 1.0]])


def test_unevaluated_derivative_is_refused():
    st = Statement(D[p], sp.Derivative(A[p] ** 2, A[p]))
    kernel = Kernel("bad", [Array("A", (P,))], [], [st], ["D"])
    with pytest.raises(DeriveError, match="unevaluated derivative"):
        validate(kernel)


def test_undefined_operand_and_free_index_are_refused():
    with pytest.raises(DeriveError, match="neither an argument"):
        validate(Kernel("bad", [Array("A", (P,))], [], [Statement(D[p], B[p])], ["D"]))
    with pytest.raises(DeriveError, match="free"):
        validate(Kernel("bad", [Array("A", (P, Q))], [], [Statement(D[p], A[p, q])], ["D"]))
    with pytest.raises(DeriveError, match="ranges over"):
        validate(Kernel("bad", [Array("A", (P, Q))], [], [Statement(D[p, k], A[p, k])], ["D"]))


@pytest.mark.parametrize("name", registry.MODULES)
def test_generated_torch_never_calls_autograd(name):
    tree = ast.parse((GENERATED / "torch" / f"{name}.py").read_text())
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    # Reading a tensor's requires_grad flag (into refuses such a target) is not a call into autograd.
    assert not names & {"autograd", "backward", "grad", "requires_grad_", "enable_grad"}


def test_fractional_and_negative_powers_are_parenthesised():
    code = statement(Statement(D[p], A[p] ** sp.Rational(3, 2) + A[p] ** -2))
    assert "**(3/2)" in code and "**(-2)" in code
    a = np.random.rand(4) + 0.5
    np.testing.assert_allclose(run(code, A=a)["D"], a ** 1.5 + a ** -2.0)


def test_matmul_operands_keep_their_precedence():
    # C ∘ (A B): "C*A @ B" would be (C*A) @ B.
    st = Statement(D[p, q], C[p, q] * sp.Sum(A[p, k] * B[k, q], (k, 0, K - 1)) + sp.Sum(A[p, k] * B[k, q], (k, 0, K - 1)))
    code = statement(st)
    a, b, c = np.random.rand(3, 4), np.random.rand(4, 5), np.random.rand(3, 5)
    np.testing.assert_allclose(run(code, A=a, B=b, C=c)["D"], c * (a @ b) + a @ b)
    # A padded matrix-vector product: (A v)[:, None], not A @ v[:, None].
    v = sp.IndexedBase("v", real=True)
    st = Statement(D[p, q], C[p, q] * sp.Sum(A[p, k] * v[k], (k, 0, K - 1)))
    code = statement(st)
    vv = np.random.rand(4)
    np.testing.assert_allclose(run(code, A=a, v=vv, C=c)["D"], c * (a @ vv)[:, None])
    assert "(A @ v)[:, None]" in code
    assert statement(Statement(D[p, q], sp.Sum(A[p, k] * B[k, q], (k, 0, K - 1)))) == "D = _matmul(A, B)"


def test_numpy_write_helpers_keep_values_in_any_memory_order():
    """_putmask on a Fortran-ordered target (a product formed transposed), with a value of its shape, a number,
    or one that broadcasts; _matmul's two orientations; _floats promotes and converts what has no dtype."""
    env = run("")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6))
    for value in (rng.standard_normal((4, 6)), 2.5, np.arange(6.0)):
        for target in (x.copy(), np.asfortranarray(x)):
            env["_putmask"](target, x > 0, value)
            np.testing.assert_array_equal(target, np.where(x > 0, value, x))
    for a, b in ((rng.standard_normal((3, 5)), rng.standard_normal((5, 7))),
                 (rng.standard_normal((7, 5)), rng.standard_normal((5, 3)))):
        np.testing.assert_allclose(env["_matmul"](a, b), a @ b, rtol=1e-14)
    out = env["_floats"](np.arange(3), np.ones(2, np.float32), 2)
    assert [o.dtype for o in out] == [np.float64] * 3 and isinstance(out[2], np.ndarray)
