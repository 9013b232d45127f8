"""``python -m tests.fingerprint``: a SHA-256 per module of everything derived from it, one line each.

Derives (without running the kernels) every registered module (not with ``--without-registry``), the course's
examples and every user forward, renders their kernels and derivations, and prints ``name digest``. Run under
different ``PYTHONHASHSEED`` values, the lines must be the same: a derivation must not depend on the order of a set.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from derive import registry
from derive.engine.emit import build, render_all
from derive.engine.errors import DeriveError

USER_FORWARDS = Path(__file__).resolve().parent / "user_forwards"


def fingerprints(paths=None, with_registry=True) -> dict:
    build_all = lambda forwards: [build(f) for f in forwards]   # noqa: E731
    if with_registry:
        modules, worked = registry.build_everything(build_all)
        built = list(modules) + list(worked)
    else:
        from derive import examples
        built = build_all(examples.forwards())
    for path in paths if paths is not None else sorted(USER_FORWARDS.glob("*.py")):
        try:
            built.append(build(registry.load_path(path)))
        except DeriveError as e:   # a refusal is a result too: its text must not depend on the seed either
            print(f"{path.stem} refused {hashlib.sha256(str(e).encode()).hexdigest()[:16]}")
    out = {}
    for b in built:
        files = render_all([b], b.forward.source or b.forward.name)
        text = "\0".join(f"{k}\0{v}" for k, v in sorted(files.items()))
        out[b.forward.name] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


def main(argv=None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    with_registry = "--without-registry" not in args
    paths = [Path(a) for a in args if a != "--without-registry"] or None
    for name, digest in sorted(fingerprints(paths, with_registry).items()):
        print(name, digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
