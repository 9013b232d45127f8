"""What the README quotes of emitted kernels is what the kernels are: a quote that drifts fails here.

A code block the README marks ``<!-- quoted from PATH -->`` must appear verbatim (lines and indentation)
in that file, and a kernel signature it names in backquotes (``name_forward(...)``, ``name_backward(...)``)
must be a ``def`` line of that module's NumPy kernels. PATH is under generated/, or under my_kernels/: the
folder the README's own example derives, which this test derives from the README's ``# NAME.py`` blocks.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

# One pytest-xdist worker runs this file: its module fixture is derived or built once.
pytestmark = pytest.mark.xdist_group("readme")

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
USER_FOLDER = "my_kernels"


def code_blocks(text: str):
    """(language, body, the line above the opening fence) for every fenced block."""
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            above = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            blocks.append((lines[i][3:].strip(), "\n".join(lines[i + 1:end]), above))
            i = end
        i += 1
    return blocks


QUOTE = re.compile(r"<!-- quoted from (\S+)")
QUOTES = [(m.group(1), body) for _, body, above in code_blocks(README) if (m := QUOTE.match(above))]
SIGNATURES = re.findall(r"`(\w+_(?:forward|backward)\([^`]*\))`", README)


@pytest.fixture(scope="module")
def user_kernels(tmp_path_factory):
    """The README's own forwards (python blocks opening with ``# NAME.py``), derived as it says."""
    tmp = tmp_path_factory.mktemp("readme")
    sources = []
    for language, body, _ in code_blocks(README):
        first = body.split("\n", 1)[0]
        if language == "python" and first.startswith("# ") and first.endswith(".py"):
            (tmp / first[2:]).write_text(body + "\n", encoding="utf-8")
            sources.append(first[2:])
    assert sources, "the README derives no forward of its own"
    r = subprocess.run([sys.executable, "-m", "derive", *sources, "--out", USER_FOLDER], cwd=tmp,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return tmp


def _file(path: str, user_kernels: Path) -> Path:
    return (user_kernels if path.split("/")[0] == USER_FOLDER else ROOT) / path


def test_the_readme_marks_its_quotes():
    assert {path.split("/")[0] for path, _ in QUOTES} == {"generated", USER_FOLDER}
    assert len(SIGNATURES) >= 2


@pytest.mark.parametrize("path, body", QUOTES, ids=[path for path, _ in QUOTES])
def test_a_quoted_block_is_in_its_file(path, body, user_kernels):
    text = _file(path, user_kernels).read_text(encoding="utf-8")
    assert f"\n{body}\n" in text, f"README.md quotes {path}, which no longer holds:\n{body}"


@pytest.mark.parametrize("signature", SIGNATURES)
def test_a_named_signature_is_the_emitted_one(signature, user_kernels):
    module = signature.split("(", 1)[0].rsplit("_", 1)[0]
    candidates = [user_kernels / USER_FOLDER / "numpy" / f"{module}.py", ROOT / "generated" / "numpy" / f"{module}.py"]
    path = next((p for p in candidates if p.exists()), None)
    assert path is not None, f"README.md names {signature}, but no module {module} is derived"
    defs = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("def ")]
    assert f"def {signature}:" in defs, f"README.md: {signature}; {path.name} has {defs}"
