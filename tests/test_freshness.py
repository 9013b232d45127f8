"""generated/ is exactly what the derivations produce, under this process's own hash seed (the registry's half of
tests/test_determinism.py)."""
from __future__ import annotations

import os
from pathlib import Path

from derive import registry
from derive.engine.emit import MARK

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "generated"


def test_generated_matches_a_fresh_derivation():
    """Also the registry's test of tests/test_determinism.py: this process's hash seed is not the one generated/
    was written under (each Python process draws its own), so a derivation that depends on it differs here."""
    files = registry.render_everything()
    seed = os.environ.get("PYTHONHASHSEED", "random")
    for rel, text in files.items():
        path = GENERATED / rel
        assert path.exists(), f"missing {rel}: run make derive"
        assert path.read_text(encoding="utf-8") == text, \
            f"stale {rel}: run make derive (if it stays stale after that, it depends on the hash seed: " \
            f"PYTHONHASHSEED={seed} here)"
    on_disk = {p.relative_to(GENERATED).as_posix() for p in GENERATED.rglob("*")
               if p.is_file() and p.suffix in (".py", ".md", ".tex", ".json")
               and MARK in p.read_text(encoding="utf-8").split("\n", 1)[0]}
    assert on_disk == set(files), f"not produced any more: {sorted(on_disk - set(files))}"


def test_every_file_starts_with_the_header():
    """Every file under generated/ (kernels, packages, derivations, examples) names its source file."""
    # A module's derivation fragment (derivations/<module>.json) is data: its mark is its first key.
    comment = {".py": ("# ", ""), ".tex": ("% ", ""), ".md": ("<!-- ", " -->"), ".json": ('{"generated": "', '",')}
    files = [p for p in GENERATED.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert len(files) >= 50
    for p in files:
        opening, closing = comment[p.suffix]
        first = p.read_text(encoding="utf-8").split("\n", 1)[0]
        rel = p.relative_to(GENERATED)
        if p.stem == "_helpers":  # a backend's helpers, copied from their module
            source = f"derive/helpers/{rel.parts[-2]}_helpers.py"
        elif rel.parts[0] == "examples":
            source = "derive/examples.py"
        elif len(rel.parts) == 2 and p.stem != "__init__":  # a module's kernels and fragment name its own file
            source = f"derive/{p.stem}.py"
        else:
            source = "derive/registry.py"
        assert (ROOT / source).exists()
        assert first == f"{opening}{MARK} {source}. DO NOT EDIT.{closing}", f"{p}: {first}"


def test_writer_keeps_unchanged_files_and_removes_stale_ones(tmp_path):
    from derive.engine.emit import write
    files = {"a.py": f"# {MARK} x. DO NOT EDIT.\n", "sub/b.py": f"# {MARK} y. DO NOT EDIT.\n"}
    write(files, tmp_path)
    (tmp_path / "stale.py").write_text(f"# {MARK} z. DO NOT EDIT.\n")
    (tmp_path / "mine.py").write_text("# written by a person\n")
    before = (tmp_path / "a.py").stat().st_mtime_ns
    counts = write(files, tmp_path)
    assert counts == {"written": 0, "unchanged": 2, "removed": 1}
    assert (tmp_path / "a.py").stat().st_mtime_ns == before
    assert not (tmp_path / "stale.py").exists() and (tmp_path / "mine.py").exists()


def test_derivations_show_the_lines_the_kernels_run():
    """Every line DERIVATIONS.md shows as emitted code is a line of the module's NumPy kernel file."""
    text = (GENERATED / "DERIVATIONS.md").read_text(encoding="utf-8")
    sections = text.split("\n## ")[1:]
    assert len(sections) >= 10
    for section in sections:
        module = section.split("\n", 1)[0].strip()
        kernel = {line.strip() for line in (GENERATED / "numpy" / f"{module}.py").read_text().splitlines()}
        blocks = section.split("*emitted code*\n\n```python\n")[1:]
        assert blocks, module
        for block in blocks:
            for line in block.split("\n```", 1)[0].splitlines():
                assert line.strip() in kernel, f"{module}: {line!r} is not in generated/numpy/{module}.py"
