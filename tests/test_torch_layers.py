"""The drop-in layers: every derived module as a torch.autograd.Function passes gradcheck in float64; a user's own
kernels (a folder ``python -m derive`` wrote) train like PyTorch; the README's example runs as written."""
from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from derive import registry
from runtime.torch_layers import DerivedLayer, function
from tests.conftest import USER_FORWARDS, as_tensor, draw, kernels_of, sizes_for
from tests.user_references import REFERENCES

# One pytest-xdist worker runs this file: its module fixture is derived or built once.
pytestmark = pytest.mark.xdist_group("torch_layers")


@pytest.mark.parametrize("name", registry.MODULES)
def test_gradcheck(name):
    forward = registry.load(name)
    k = kernels_of(name, "torch")
    rng = np.random.default_rng(0)
    sizes = sizes_for(forward, rng, batch=3, feature=4)
    arrays = draw(forward, sizes, rng)
    values = [as_tensor(arrays[n], requires_grad=n not in k.CONSTS) for n in k.ARGUMENTS]
    assert torch.autograd.gradcheck(function(name).apply, values, eps=1e-6, atol=1e-6)


def test_layer_in_an_ordinary_model_trains_like_pytorch():
    torch.manual_seed(0)
    X, y = torch.randn(16, 5, dtype=torch.float64), torch.randint(0, 3, (16,))
    W1, W2 = torch.randn(8, 5, dtype=torch.float64) * 0.3, torch.randn(3, 8, dtype=torch.float64) * 0.3
    ours = torch.nn.Sequential(DerivedLayer("linear", W=W1.clone(), b=torch.zeros(8, dtype=torch.float64)),
                               DerivedLayer("layer_norm", gamma=torch.ones(8, dtype=torch.float64),
                                            beta=torch.zeros(8, dtype=torch.float64)),
                               DerivedLayer("silu"),
                               DerivedLayer("linear", W=W2.clone(), b=torch.zeros(3, dtype=torch.float64)))
    ref = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.LayerNorm(8), torch.nn.SiLU(), torch.nn.Linear(8, 3)).double()
    with torch.no_grad():
        ref[0].weight.copy_(W1), ref[0].bias.zero_(), ref[3].weight.copy_(W2), ref[3].bias.zero_()
    for model in (ours, ref):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X), y).backward()
            opt.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_loss_function_chains_the_incoming_gradient():
    X = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    T = torch.softmax(torch.randn(4, 3, dtype=torch.float64), 1)
    L = function("softmax_cross_entropy").apply(X, T)
    (3.0 * L).backward()
    Xr = X.detach().clone().requires_grad_()
    (3.0 * torch.nn.functional.cross_entropy(Xr, T)).backward()
    torch.testing.assert_close(X.grad, Xr.grad)


# -- your own kernels: a folder that ``python -m derive FILE.py --out DIR`` wrote --------------------------------

ROOT = Path(__file__).resolve().parents[1]


def derive_cli(files, out, cwd=ROOT):
    r = subprocess.run([sys.executable, "-m", "derive", *map(str, files), "--out", str(out)], cwd=cwd,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def prelu_kernels(tmp_path_factory):
    out = tmp_path_factory.mktemp("user_layers") / "my_kernels"
    derive_cli([USER_FORWARDS / "prelu.py"], out)
    return out


def test_user_kernels_train_like_an_independent_torch_implementation(prelu_kernels):
    torch.manual_seed(0)
    X, T = torch.randn(12, 5, dtype=torch.float64), torch.randn(12, 4, dtype=torch.float64)
    W, a = torch.randn(4, 5, dtype=torch.float64), torch.tensor([0.25, -0.5, 0.1, 2.0], dtype=torch.float64)

    class Reference(torch.nn.Module):  # PReLU through torch.autograd (tests/user_references.py)
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(a.clone())

        def forward(self, X):
            return REFERENCES["prelu"](X=X, a=self.a)

    ours = torch.nn.Sequential(torch.nn.Linear(5, 4).double(), DerivedLayer("prelu", kernels=prelu_kernels, a=a.clone()))
    ref = torch.nn.Sequential(torch.nn.Linear(5, 4).double(), Reference())
    for model in (ours, ref):
        with torch.no_grad():
            model[0].weight.copy_(W), model[0].bias.fill_(0.1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(X), T).backward()
            opt.step()
    assert [n for n, _ in ours.named_parameters()] == ["0.weight", "0.bias", "1.a"]
    assert not torch.equal(ours[1].a, a)  # the slope trained
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_user_kernels_pass_gradcheck(prelu_kernels):
    rng = np.random.default_rng(1)
    X = torch.tensor(rng.standard_normal((6, 4)), requires_grad=True)
    a = torch.tensor(rng.standard_normal(4), requires_grad=True)
    assert torch.autograd.gradcheck(function("prelu", kernels=prelu_kernels).apply, (X, a))


def test_user_layer_state_dict_round_trip(prelu_kernels):
    a = torch.tensor([0.25, -0.5, 0.1], dtype=torch.float64)
    trained = DerivedLayer("prelu", kernels=prelu_kernels, a=a.clone())
    with torch.no_grad():
        trained.a.mul_(3)
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    fresh = DerivedLayer("prelu", kernels=str(prelu_kernels), a=torch.zeros(3, dtype=torch.float64))
    fresh.load_state_dict(torch.load(buffer))
    torch.testing.assert_close(fresh.a, 3 * a, rtol=0, atol=0)
    X = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(fresh(X), trained(X), rtol=0, atol=0)


def one_line(excinfo, pattern):
    message = str(excinfo.value)
    assert "\n" not in message and re.search(pattern, message), message


def test_unknown_names_and_folders_are_refused_in_one_line(prelu_kernels, tmp_path):
    where = re.escape(repr(str(prelu_kernels)))
    for make in (lambda: function("prelu_typo", kernels=prelu_kernels),
                 lambda: DerivedLayer("prelu_typo", kernels=prelu_kernels, a=torch.zeros(3))):
        with pytest.raises(ValueError) as e:
            make()
        one_line(e, rf"^no module 'prelu_typo' in {where}: it holds prelu$")
    with pytest.raises(ValueError) as e:
        function("prelu")  # a user module is not a built-in
    one_line(e, r"^no built-in module 'prelu' \(the built-ins: .*\blayer_norm\b.*\); for your own, pass kernels=DIR")
    with pytest.raises(ValueError) as e:
        function("prelu", kernels=tmp_path)
    one_line(e, r"is not a folder `python -m derive FILE.py --out DIR` wrote \(it has no torch/_helpers.py\)$")
    with pytest.raises(ValueError) as e:
        DerivedLayer("prelu", kernels=tmp_path / "absent", a=torch.zeros(3))
    one_line(e, r"absent': no such folder$")


def test_scalars_are_bound_when_the_function_is_made():
    X = torch.randn(4, 6, dtype=torch.float64) * 1e-2
    gamma, beta = torch.ones(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    for eps in (1e-5, 1e-2):
        bound = function("layer_norm", eps=eps).apply(X, gamma, beta)
        torch.testing.assert_close(bound, torch.nn.functional.layer_norm(X, (6,), gamma, beta, eps=eps))
    torch.testing.assert_close(function("layer_norm").apply(X, gamma, beta),
                               torch.nn.functional.layer_norm(X, (6,), gamma, beta, eps=1e-5))
    layer = DerivedLayer("layer_norm", gamma=gamma, beta=beta, eps=1e-2)
    torch.testing.assert_close(layer(X), torch.nn.functional.layer_norm(X, (6,), gamma, beta, eps=1e-2))
    with pytest.raises(TypeError) as e:
        function("layer_norm").apply(X, gamma, beta, 1e-5)
    one_line(e, r"^layer_norm: apply takes X, gamma, beta \(its scalars are bound by function\('layer_norm', eps=…\)\); 4 given$")
    with pytest.raises(TypeError) as e:
        function("layer_norm", epsilon=1e-3)
    one_line(e, r"^layer_norm: no scalar 'epsilon' \(its scalars: eps=1e-05\)$")
    with pytest.raises(TypeError) as e:
        DerivedLayer("layer_norm", gamma=gamma, beta=beta, epsilon=1e-3)
    one_line(e, r"^layer_norm: no parameter or scalar 'epsilon' \(its parameters: gamma, beta; its scalars: eps\)$")


# -- the README's drop-in example, as written ------------------------------------------------------------------------

def readme_blocks():
    """(section title, language, code) for every fenced block of the README."""
    text = (ROOT / "README.md").read_text()
    blocks, section = [], None
    for m in re.finditer(r"^## ([^\n]+)$|^```(\w*)\n(.*?)^```$", text, re.M | re.S):
        if m.group(1):
            section = m.group(1)
        else:
            blocks.append((section, m.group(2), m.group(3)))
    return blocks


def test_readme_drop_in_example_runs_as_written(tmp_path, monkeypatch):
    blocks = readme_blocks()
    # Its kernels="my_kernels" is the README's own module, derived by the README's own command.
    module = next(code for _, lang, code in blocks if lang == "python" and code.startswith("# rms_norm.py\n"))
    command = next(line for _, lang, code in blocks if lang == "sh" for line in code.splitlines()
                   if "--out my_kernels" in line)
    argv = shlex.split(command.split("#")[0])
    assert argv[1:] == ["-m", "derive", "rms_norm.py", "--out", "my_kernels"], command
    (tmp_path / "rms_norm.py").write_text(module)
    derive_cli(["rms_norm.py"], "my_kernels", cwd=tmp_path)
    [example] = [code for section, lang, code in blocks if section == "Drop-in PyTorch layers" and lang == "python"]
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(example, "README.md (Drop-in PyTorch layers)", "exec"), scope)
    model, x = scope["model"], scope["x"]
    assert isinstance(scope["y"], torch.Tensor) and x.grad is not None
    assert [n for n, _ in model.named_parameters()] == ["0.W", "0.b", "1.gamma"]
    assert sorted(torch.load(tmp_path / "model.pt")) == ["0.W", "0.b", "1.gamma"]


def test_recurrent_cells_as_layers_match_torch_nn_with_one_output_unused():
    """lstm_cell returns (h, c) like torch.nn.LSTMCell; a loss on h alone reaches the kernels as dc = None (zero)."""
    torch.manual_seed(0)
    S, I, H = 4, 3, 5
    for name, cell in (("lstm_cell", torch.nn.LSTMCell(I, H)), ("gru_cell", torch.nn.GRUCell(I, H))):
        cell = cell.double()
        X, h0, c0 = (torch.randn(S, n, dtype=torch.float64) for n in (I, H, H))
        weights = [p.detach().clone().requires_grad_() for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih,
                                                                  cell.bias_hh)]
        state = (h0, c0) if name == "lstm_cell" else (h0,)
        ours = function(name).apply(X, *state, *weights)
        theirs = cell(X, state if name == "lstm_cell" else h0)
        h, ref = (ours[0], theirs[0]) if name == "lstm_cell" else (ours, theirs)
        torch.testing.assert_close(h, ref, rtol=1e-12, atol=1e-12)
        (h ** 2).sum().backward()
        (ref ** 2).sum().backward()
        for w, p in zip(weights, (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)):
            torch.testing.assert_close(w.grad, p.grad, rtol=1e-10, atol=1e-12)
