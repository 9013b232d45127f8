"""A wheel of the project derives a user's forward from any folder, and deriving needs no torch."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

# One pytest-xdist worker runs this file: its module fixture is derived or built once.
pytestmark = pytest.mark.xdist_group("wheel")

ROOT = Path(__file__).resolve().parents[1]

FORWARD = '''
import sympy as sp
from derive.engine.notation import Forward

forward = Forward("swish_beta", "x sigmoid(beta x)")
S, D = forward.dims("S D")
s, j = forward.indices(s=S, j=D)
X = forward.input("X", S, D)
beta = forward.scalar("beta", 1.5)
forward.output("Y", (s, j), X[s, j] / (1 + sp.exp(-beta * X[s, j])))
'''


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory):
    """The project built as a wheel (not editable) and unpacked into a folder of its own."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources it builds.
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "data", "runs", "device-data", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    # The layouts (templates/ at the top of the source tree) travel inside the package, adding no top-level folder.
    assert "derive/templates/kernel.py.j2" in names and not any(n.startswith("templates/") for n in names)
    assert "generated/examples/numpy/norm.py" in names
    site = tmp / "site"
    zipfile.ZipFile(wheel).extractall(site)
    return site


def _run(args, cwd, site, block_torch=False):
    path = [str(site)]
    if block_torch:  # a folder whose ``torch`` cannot be imported: as if torch were not installed
        blocker = site.parent / "no_torch"
        (blocker / "torch").mkdir(parents=True, exist_ok=True)
        (blocker / "torch" / "__init__.py").write_text("raise ImportError('torch is not installed')\n")
        path.insert(0, str(blocker))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_a_wheel_derives_a_users_forward_from_another_folder(wheel_site, tmp_path):
    (tmp_path / "swish_beta.py").write_text(FORWARD)
    r = _run(["-c", "import derive; print(derive.__file__)"], tmp_path, wheel_site)
    assert r.stdout.strip().startswith(str(wheel_site)), r.stdout + r.stderr
    r = _run(["-m", "derive", "swish_beta.py", "--out", "out"], tmp_path, wheel_site)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "numpy" / "swish_beta.py").exists() and (tmp_path / "out" / "torch" / "swish_beta.py").exists()


def test_deriving_needs_no_torch(wheel_site, tmp_path):
    """Without torch: ``--help`` works, and a forward derives (its Torch kernels are written, not run)."""
    r = _run(["-X", "importtime", "-m", "derive", "--help"], tmp_path, wheel_site)
    assert r.returncode == 0 and "usage" in r.stdout
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert not {m for m in imported if m.split(".")[0] in ("torch", "scipy", "sympy")}, "--help imports too much"
    (tmp_path / "swish_beta.py").write_text(FORWARD)
    r = _run(["-m", "derive", "swish_beta.py", "--out", "out"], tmp_path, wheel_site, block_torch=True)
    assert r.returncode == 0, r.stderr
    assert "torch is not installed" in r.stdout + r.stderr
    assert (tmp_path / "out" / "torch" / "swish_beta.py").exists()
