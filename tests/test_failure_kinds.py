"""Each way a user's forward used to fail, shown failing no more: a correct kernel, or one clear line.

The kinds (issue 7): a kernel that raised NameError at its first call (scalar
constants through ``math``), an engine traceback (a complex infinity), a hang
(simplification without a budget), a refusal in SymPy's words (clamps), and a
kernel never run before it was written. Overflow over the whole floating range
is tests/test_full_range.py; installability is tests/test_packaging.py.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch

from derive.engine import budget
from derive.engine.emit import build, render_all, write
from derive.engine.errors import DeriveError, require_finite
from derive.engine.ir import Statement
from derive.engine.notation import Forward
from derive.engine.verify import verify
from tests.conftest import load_file

ROOT = Path(__file__).resolve().parents[1]

SCALED = '''
import sympy as sp
from derive.engine.notation import Forward

forward = Forward("scaled", "constants of scalars only")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
c = forward.scalar("c", 3.0)
tau = forward.scalar("tau", 0.7)
forward.output("Y", (s, j), X[s, j] / sp.sqrt(c) + sp.sqrt(2) * sp.pi * X[s, j] ** 2 / tau)
'''


def derive_cli(*args):
    return subprocess.run([sys.executable, "-m", "derive", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_constants_of_scalars_run_on_both_backends(tmp_path):
    """``X/√c``, ``√2 π/τ``: printed with what the kernel file imports (was: NameError: math)."""
    (tmp_path / "scaled.py").write_text(SCALED)
    r = derive_cli(str(tmp_path / "scaled.py"), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    rng = np.random.default_rng(0)
    X, dY = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    Xt = torch.tensor(X, requires_grad=True)
    ref = Xt / np.sqrt(2.5) + np.sqrt(2) * np.pi * Xt ** 2 / 0.3
    (rX,) = torch.autograd.grad(ref, Xt, torch.tensor(dY))
    for backend in ("numpy", "torch"):
        k = load_file(tmp_path / "out" / backend / "scaled.py", f"scaled_{backend}")
        t = np.asarray if backend == "numpy" else torch.tensor
        Y = k.scaled_forward(t(X), c=2.5, tau=0.3)
        dX = k.scaled_backward(t(dY), **{n: t(X) for n in k.SAVED}, c=2.5, tau=0.3)
        np.testing.assert_allclose(np.asarray(Y), ref.detach().numpy(), rtol=1e-13)
        np.testing.assert_allclose(np.asarray(dX), rX.numpy(), rtol=1e-13)


def test_a_complex_infinity_is_one_line_at_the_stage_that_made_it(tmp_path):
    f = Forward("z", "")
    S, D = f.dims("S D")
    s, j = f.indices(s=S, j=D)
    X = f.input("X", S, D)
    f.output("Y", (s, j), X[s, j] / (X[s, j] - X[s, j]))
    with pytest.raises(DeriveError) as e:
        build(f)
    line = str(e.value)
    assert line.startswith("z: differentiate: ") and "zoo" in line and "\n" not in line
    with pytest.raises(DeriveError, match=r"^m: sift: dX = nan: the result holds nan"):
        require_finite("m", "sift", "dX", sp.nan * sp.Symbol("x"))


def test_a_budget_stops_a_rewrite_that_does_not_finish():
    def forever(e):
        while True:
            time.sleep(0.01)

    budget.collect()
    start = time.monotonic()
    assert budget.attempt(forever, sp.Symbol("x"), "simplify something", seconds=0.2) is None
    assert time.monotonic() - start < 2.0
    big = (sp.Symbol("x") + 1) ** 40
    assert budget.attempt(sp.expand, big, "expand", max_size=1) is None
    assert budget.collect() == [("simplify something", "stopped after 0.2 s"),
                                ("expand", f"skipped: the expression has {budget.size(big)} operations, "
                                           "over the budget of 1")]


def test_out_of_budget_keeps_a_correct_form_and_says_so(monkeypatch):
    """With no budget at all for rewrites, a tanh-nest activation still derives into kernels that pass the
    execute-before-write check, and its derivation says which rewrites it skipped."""
    from tests.conftest import load_user_forward

    monkeypatch.setattr(budget, "SIZE_FACTOR", 0)
    b = build(load_user_forward("gelu_tanh"))
    notes = b.derivation.gradients[0].notes
    assert notes and all("skipped" in n for n in notes)
    assert b.notes and all("skipped" in n for n in b.notes)  # the numerics pass's rewrites too
    files = render_all([b], source="gelu_tanh.py")
    text = files["DERIVATIONS.md"]
    assert "*out of budget* (the form above" in text and "*out of budget while lowering to kernels*" in text
    verify([b], files)  # raises on a wrong or failing kernel


def test_a_clamp_derives_with_pytorchs_slopes(tmp_path):
    """``min(1, max(−1, X))`` (was: ``condition ITE(...) cannot be printed``)."""
    f = Forward("clamp", "")
    S, D = f.dims("S D")
    s, j = f.indices(s=S, j=D)
    X = f.input("X", S, D)
    f.output("Y", (s, j), sp.Min(1, sp.Max(-1, X[s, j])))
    b = build(f)
    files = render_all([b], source="clamp.py")
    verify([b], files)
    write(files, tmp_path)
    x = np.array([[-2.0, -1.0, 0.0, 1.0, 2.0]])
    dX = load_file(tmp_path / "numpy" / "clamp.py").clamp_backward(np.ones_like(x), X=x)
    xt = torch.tensor(x, requires_grad=True)
    torch.clamp(xt, -1, 1).sum().backward()
    np.testing.assert_array_equal(dX, xt.grad.numpy())


def test_a_kernel_that_fails_its_check_is_never_written(tmp_path):
    """Execute-before-write: a backward made wrong on purpose is caught, named, and nothing is written."""
    b = build(_square())
    bwd = b.backward
    bwd.statements[-1] = Statement(bwd.statements[-1].lhs, 2 * bwd.statements[-1].rhs)
    files = render_all([b], source="square.py")
    with pytest.raises(DeriveError) as e:
        verify([b], files)
    line = str(e.value)
    assert line.startswith("square: verify: ") and "square_backward" in line and "dX" in line, line


def _square():
    f = Forward("square", "")
    S, D = f.dims("S D")
    s, j = f.indices(s=S, j=D)
    X = f.input("X", S, D)
    f.output("Y", (s, j), X[s, j] ** 2)
    return f


def test_debug_shows_the_traceback_and_the_default_does_not(tmp_path):
    src = tmp_path / "bad.py"
    src.write_text(SCALED.replace('"scaled"', '"bad"').replace("forward.output(", "forward.output('Y', (s,), X[s, j])\n#"))
    out = tmp_path / "out"
    quiet, loud = derive_cli(str(src), "--out", str(out)), derive_cli(str(src), "--out", str(out), "--debug")
    assert quiet.returncode == loud.returncode == 2
    assert "Traceback" not in quiet.stderr and quiet.stderr.strip().splitlines()[-1].startswith("derive: error: bad: ")
    assert "Traceback" in loud.stderr
    assert not out.exists() or not any(out.rglob("*.py"))


def test_a_parameter_never_becomes_a_divisor(user_kernels):
    """``γ σ(X)`` is not rewritten in its output as ``(γ − Y) Y/γ``: a gain of 0 gives dX = 0, not NaN."""
    k = user_kernels("gain_sigmoid", "numpy")
    X, gamma, dY = np.array([[-3.0, 0.5, 40.0]]), np.array([0.0, 2.0, 1.0]), np.ones((1, 3))
    outs = k.gain_sigmoid_forward(X, gamma)
    env = {"X": X, "gamma": gamma, **dict(zip(k.RETURNS, outs if len(k.RETURNS) > 1 else (outs,)))}
    dX, dgamma = k.gain_sigmoid_backward(dY, **{n: env[n] for n in k.SAVED})
    slope = np.exp(-np.abs(X)) / (1 + np.exp(-np.abs(X))) ** 2  # σ'(x), without 1 − σ
    np.testing.assert_allclose(dX, gamma * slope * dY, rtol=1e-12, atol=0)
    assert dX[0, 2] > 0  # σ'(40) = 4e-18 is a normal number, not 0


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_let_never_becomes_a_divisor(user_kernels, backend):
    """(X Wᵀ + b) σ(X Vᵀ + c): σ(G) is not rewritten as Y/A, so a zero input row with a zero bias (A = 0)
    gives finite weight gradients, as autograd does."""
    import torch

    k = user_kernels("gated_linear", backend)
    rng = np.random.default_rng(0)
    X, W, V, c, dY = (rng.standard_normal(s) for s in ((3, 4), (2, 4), (2, 4), (2,), (3, 2)))
    X[1], b = 0.0, np.zeros(2)
    t = (lambda a: a) if backend == "numpy" else torch.from_numpy
    outs = k.gated_linear_forward(*map(t, (X, W, b, V, c)))
    env = {"X": t(X), "W": t(W), "b": t(b), "V": t(V), "c": t(c), **dict(zip(k.RETURNS, outs))}
    grads = dict(zip(k.GRADIENTS, k.gated_linear_backward(t(dY), **{n: env[n] for n in k.SAVED})))
    ref = {n: torch.tensor(a, requires_grad=True) for n, a in dict(X=X, W=W, b=b, V=V, c=c).items()}
    y = torch.nn.functional.linear(ref["X"], ref["W"], ref["b"]) * torch.sigmoid(
        torch.nn.functional.linear(ref["X"], ref["V"], ref["c"]))
    y.backward(torch.tensor(dY))
    for name, tensor in ref.items():
        np.testing.assert_allclose(np.asarray(grads["d" + name]), tensor.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["gated_memory", "gated_memory_gain"])
def test_a_finite_gradient_never_passes_through_an_infinite_partial_product(user_kernels, name, backend, dtype):
    """σ(X Wᵀ) ⊙ C (⊙ γ) at C = the largest float, dY = 2, A = 0: dA = C dY σ′(0) = C/2 is finite, though C dY
    is not. The gate's own gradient (C dY) is no array (one reader), and σ′ is multiplied in first, also where
    the gain γ is laid out apart. (Autograd forms C dY and gives inf.)"""
    k = user_kernels(name, backend)
    big = np.finfo(dtype).max
    given = {"X": [[0.0, 0.0]], "C": [[big]], "W": [[0.5, -0.5]], "gamma": [1.0]}
    given = {n: np.array(given[n], dtype=dtype) for n in k.ARGUMENTS}
    dY = np.array([[2.0]], dtype=dtype)
    t = (lambda a: a) if backend == "numpy" else torch.from_numpy
    outs = getattr(k, f"{name}_forward")(*[t(given[n]) for n in k.ARGUMENTS])
    env = {**{n: t(a) for n, a in given.items()}, **dict(zip(k.RETURNS, outs))}
    grads = dict(zip(k.GRADIENTS, getattr(k, f"{name}_backward")(t(dY), **{n: env[n] for n in k.SAVED})))
    dA = big / 4 * dY[0, 0]   # σ′(0) = 1/4; powers of two, exact
    np.testing.assert_array_equal(np.asarray(grads["dX"]), dA * given["W"])
    np.testing.assert_array_equal(np.asarray(grads["dW"]), np.zeros_like(given["W"]))   # dA X with X = 0
    np.testing.assert_array_equal(np.asarray(grads["dC"]), dY / 2)
    if "dgamma" in grads:   # Σ_s f C dY = C: f = 1/2, saved by the forward, is known to be at most one
        np.testing.assert_array_equal(np.asarray(grads["dgamma"]), given["C"][0] / 2 * dY[0, 0])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_what_an_exponential_rewrite_does_not_touch_stays_as_written(user_kernels, backend, dtype):
    """T tanh(X) + (1 − T) X with T = σ(800) and X large: (1 − T) X = X e^{−800} is far below an ulp of 1, so
    Y = ±1. Written over e^{−2|X|}, the coefficient (1 − T) X stays a product; expanded to X − T X it cancelled
    against 1: (1 + X − X) = 0."""
    k = user_kernels("highway_mix", backend)
    big = 3e7 if dtype == np.float32 else 1e17
    X, G = (np.array(a, dtype=dtype) for a in ([[big, -big]], [[800.0, 800.0]]))
    t = (lambda a: a) if backend == "numpy" else torch.from_numpy
    Y = np.asarray(k.highway_mix_forward(t(X), t(G))[0])
    T = torch.sigmoid(torch.from_numpy(G))
    ref = (T * torch.tanh(torch.from_numpy(X)) + (1 - T) * torch.from_numpy(X)).numpy()
    assert ref[0, 0] == 1 and ref[0, 1] == -1
    np.testing.assert_array_equal(Y, ref)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_parameter_read_at_integer_indices_derives(user_kernels, backend):
    """p of shape (2, H) read as p[0, j] and p[1, j]: dp = δ(0, p) Σ_s X dY + δ(1, p) Σ_s dY, a mask per row."""
    k = user_kernels("peephole_rows", backend)
    rng = np.random.default_rng(3)
    X, p, dY = rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), rng.standard_normal((4, 3))
    t = (lambda a: a) if backend == "numpy" else torch.from_numpy
    outs = k.peephole_rows_forward(t(X), t(p))
    env = {"X": t(X), "p": t(p), **dict(zip(k.RETURNS, outs if isinstance(outs, tuple) else (outs,)))}
    grads = dict(zip(k.GRADIENTS, k.peephole_rows_backward(t(dY), **{n: env[n] for n in k.SAVED})))
    np.testing.assert_allclose(np.asarray(grads["dp"]), np.stack([(X * dY).sum(0), dY.sum(0)]), rtol=1e-13)


def _gradients(k, name, given, upstream, backend):
    """Forward then backward of a user kernel module on ``given`` (NumPy arrays): {gradient name: array}."""
    t = (lambda a: a) if backend == "numpy" else torch.from_numpy
    outs = getattr(k, f"{name}_forward")(*[t(given[n]) for n in k.ARGUMENTS])
    env = {**{n: t(a) for n, a in given.items()}, **dict(zip(k.RETURNS, outs if isinstance(outs, tuple) else (outs,)))}
    grads = getattr(k, f"{name}_backward")(t(upstream), **{n: env[n] for n in k.SAVED})
    return {n: np.asarray(g) for n, g in zip(k.GRADIENTS, grads if isinstance(grads, tuple) else (grads,))}


def _autograd(reference, given, upstream):
    ts = {n: torch.tensor(a, requires_grad=True) for n, a in given.items()}
    reference(**ts).backward(torch.tensor(upstream))
    return {"d" + n: t.grad.numpy() for n, t in ts.items()}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_contraction_inside_an_exponential_is_an_array_of_its_own(user_kernels, backend, dtype):
    """σ(Σ_k X W) and tanh(Σ_k X W) written inline: their slopes are of the lifted contraction _z1, so a
    saturated gate (a = ±1000) gives PyTorch's gradients, not NaN, and a huge G on a saturated sample adds its
    true ~0 instead of cancelling two sums of 1e300 (or 1e30 in float32)."""
    from tests.user_references import REFERENCES

    big = 1e300 if dtype == np.float64 else 1e30
    cases = {"sigmoid_of_contraction": {"X": [[1000.0, 0.5], [-1000.0, 0.25]], "h0": [[1.0, 2.0], [3.0, 4.0]],
                                        "W": [[1.0, 0.0], [0.0, 1.0]]},
             "tanh_of_contraction": {"X": [[400.0, 0.5], [0.3, -0.7]], "G": [big, 1.0],
                                     "W": [[1.0, 0.0], [1.0, 0.5]]}}
    for name, given in cases.items():
        k = user_kernels(name, backend)
        given = {n: np.array(a, dtype=dtype) for n, a in given.items()}
        upstream = np.array([[1.0, -2.0], [0.5, 1.5]], dtype=dtype)
        got = _gradients(k, name, given, upstream, backend)
        want = _autograd(REFERENCES[name], {n: a.astype(np.float64) for n, a in given.items()},
                         upstream.astype(np.float64))
        for g in got:
            assert np.isfinite(got[g]).all(), (name, g, got[g])
            np.testing.assert_allclose(got[g], want[g], rtol=1e-5 if dtype == np.float32 else 1e-12,
                                       atol=1e-30, err_msg=f"{name} {g}")


def test_an_inner_budget_does_not_swallow_the_outer_one():
    def inner(e):
        return budget.attempt(lambda x: time.sleep(5), e, "inner", seconds=3.0)

    budget.collect()
    start = time.monotonic()
    assert budget.attempt(lambda e: (inner(e), time.sleep(5)), sp.Symbol("x"), "outer", seconds=0.3) is None
    assert time.monotonic() - start < 2.0
    assert budget.collect() == [("outer", "stopped after 0.3 s")]


WINDOW_EXP = '''
import sympy as sp
from derive.engine.notation import Forward, Sum

forward = Forward("window_exp", "a sum of exponentials over a padded window")
S, T = forward.dims("S T")
(To,) = forward.output_dims("To")
s, h = forward.indices(s=S, h=To)
(i,) = forward.indices(i=3)
X = forward.input("X", S, T, padding=(0, 1))
w = forward.param("w", S)
Z = forward.let("Z", (s, h), Sum(sp.exp(X[s, h + i - 1]), i))
forward.output("Y", (s, h), w[s] * Z[s, h])
'''


def test_a_shifted_exponential_sum_counts_the_padding_in_its_maximum(tmp_path):
    """Σ_i exp(X[h + i − 1]) reads exp(0) = 1 in the padding: the shift must count those zeros in its
    maximum (was: the max skipped them, and exp(0 − m) overflowed to nan at X = −800)."""
    (tmp_path / "window_exp.py").write_text(WINDOW_EXP)
    r = derive_cli(str(tmp_path / "window_exp.py"), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    X = np.full((2, 5), -800.0)
    w = np.array([1.0, 2.0])
    padded = np.pad(np.exp(X), ((0, 0), (1, 1)), constant_values=1.0)
    exact = w[:, None] * (padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:])   # 1 at the edges, exp(-800)·3 = 0 inside
    for backend in ("numpy", "torch"):
        m = load_file(tmp_path / "out" / backend / "window_exp.py", f"window_exp_{backend}")
        args = (X, w) if backend == "numpy" else (torch.tensor(X), torch.tensor(w))
        y = m.window_exp_forward(*args)[0]
        y = y if isinstance(y, np.ndarray) else y.numpy()
        assert np.all(np.isfinite(y)) and np.allclose(y, exact, rtol=1e-15, atol=0), (backend, y)


def test_a_module_past_its_time_budget_is_refused_in_one_line(monkeypatch):
    """No hang: a forward that takes longer than ``budget.MODULE_SECONDS`` to derive and lower is refused, one
    line naming the module and the stage it was in (the fuzzer drew nested maxima that took minutes)."""
    from tests.conftest import load_user_forward

    from sympy.core.cache import clear_cache

    clear_cache()   # derived earlier in this process, SymPy's cache would make it fast
    monkeypatch.setattr(budget, "MODULE_SECONDS", 0.05)
    with pytest.raises(DeriveError, match=r"^weight_norm_linear: [a-z]+: .*: ran past the budget of 0.05 s of CPU "
                                          r"for one module") as e:
        build(load_user_forward("weight_norm_linear"))
    assert "\n" not in str(e.value)


def test_what_several_outputs_may_not_do_is_refused_in_one_line():
    """Several outputs derive (tests/user_forwards/mean_and_var.py, the built-in cells); a forward without one, a
    let after the last (no output reads it) and a full Jacobian of two outputs are refused at check."""
    from derive.engine.checks import check_forward

    def forward(*defs, jacobian=False):
        f = Forward("outs", "")
        S, D = f.dims("S D")
        s, j = f.indices(s=S, j=D)
        X = f.input("X", S, D)
        for kind, name in defs:
            getattr(f, kind)(name, (s, j), sp.tanh(X[s, j]))
        f.jacobian = jacobian
        return f

    cases = [(forward(("let", "H")), r"^outs: check: H_sj = tanh\(X_sj\): the forward declares no output"),
             (forward(("output", "H"), ("let", "C")), r"^outs: check: C_sj = tanh\(X_sj\): this let comes after the "
                                                       r"last output, so no output reads it"),
             (forward(("output", "H"), ("output", "C"), jacobian=True),
              r"^outs: check: C_sj = tanh\(X_sj\): the full Jacobian \(jacobian = True\) is derived for one output")]
    for f, message in cases:
        with pytest.raises(DeriveError, match=message):
            check_forward(f)
    check_forward(forward(("output", "H"), ("output", "C")))


def test_a_window_wholly_in_the_padding_is_named_as_such():
    """A max window that lies wholly in the padding at the default hyper-parameters has no candidate (−inf): the
    refusal says so (it said to declare an input positive)."""
    from derive.engine.notation import Max, Sum

    f = Forward("padded_past_window", "")
    S, L = f.dims("S L")
    Lo, = f.output_dims("Lo")
    pad = f.integer("pad", 2, minimum=0)
    s, t, i = f.indices(s=S, t=Lo, i=2)
    X = f.input("X", S, L, padding=(0, pad))
    f.output("Y", (), Sum(Max(X[s, t + i - pad], i), s, t))
    with pytest.raises(DeriveError, match=r"^padded_past_window: verify: .*gives −inf .*a window lies wholly in the "
                                          r"padding") as e:
        b = build(f)
        verify([b], render_all([b], source="padded_past_window.py"))
    assert "\n" not in str(e.value)


def test_a_recurrence_inside_one_forward_is_refused_in_one_line():
    """h_t = tanh(w h_{t−1} + x_t) in one forward: the definition reads itself (a cell is derived, and run over time
    by the runtime)."""
    from derive.engine.checks import check_forward

    f = Forward("recur", "")
    S, T = f.dims("S T")
    s, t = f.indices(s=S, t=T)
    X = f.input("X", S, T)
    w = f.param("w", 1)
    f.output("h", (s, t), sp.tanh(w[0] * sp.IndexedBase("h")[s, t - 1] + X[s, t]))
    with pytest.raises(DeriveError, match=r"^recur: check: h_st = .*: h reads itself \(a recurrence inside one "
                                          r"forward is not expressible"):
        check_forward(f)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("scale", [1e-3, 1e-1, 1e3])
def test_a_scaled_sum_of_squares_keeps_its_scale_inside_a_function(user_kernels, backend, scale):
    """r log(r + ε) with r = Σ X² scaled by s = max |X|: the r inside the log is s² r', whole, where a
    product's own factors max(1, s)^k min(1, s)^k become s^k (once rewritten inside the log too, dropping its
    min(1, s)² where s < 1: a tenfold error at X = 0.01)."""
    k = user_kernels("energy_log", backend)
    X = scale * np.array([[1.0, 1.0], [0.5, -2.0]])
    dY = np.array([1.0, -0.5])
    t = (lambda a: a) if backend == "numpy" else torch.from_numpy
    outs = k.energy_log_forward(t(X))
    env = {"X": t(X), **dict(zip(k.RETURNS, outs))}
    dX = k.energy_log_backward(t(dY), **{n: env[n] for n in k.SAVED})   # the one gradient, not a tuple
    Xt = torch.tensor(X, requires_grad=True)
    r = (Xt ** 2).sum(dim=1)
    Y = r * torch.log(r + 0.5)
    Y.backward(torch.tensor(dY))
    np.testing.assert_allclose(np.asarray(outs[0]), Y.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(dX), Xt.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("scale", [1e-20, 1.0, 1e20, 3e38])
def test_a_scaled_sum_of_squares_keeps_its_scale_through_a_max(user_kernels, backend, scale):
    """X/√max(r, ε) in float32: the scale's powers come out of the max too (max(M² a, M² b) = M² max(a, b)), so
    the rows of 1e20 and 3e38 are normalised as those of 1 are (the max of m² r' and ε was 0 · inf before)."""
    k = user_kernels("clamped_rms", backend)
    X = (scale * np.array([[1.0, -0.5, 0.25], [0.3, 0.2, -1.0]])).astype(np.float32)
    dY = np.array([[1.0, 0.5, -0.3], [0.2, -0.1, 0.4]], np.float32)
    t = (lambda a: a) if backend == "numpy" else torch.from_numpy
    with np.errstate(over="ignore"):   # a square of the scale past the largest float32 only decides a select
        outs = k.clamped_rms_forward(t(X))
        env = {"X": t(X), **dict(zip(k.RETURNS, outs))}
        dX = k.clamped_rms_backward(t(dY), **{n: env[n] for n in k.SAVED})
    Xt = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    Y = Xt / torch.sqrt(torch.clamp((Xt ** 2).mean(dim=1, keepdim=True), min=1e-6))
    Y.backward(torch.tensor(dY, dtype=torch.float64))
    for got, want in ((outs[0], Y.detach().numpy()), (dX, Xt.grad.numpy())):
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=0, atol=8e-7 * np.abs(want).max())
