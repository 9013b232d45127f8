"""``python -m derive``: derive modules into kernels and derivations.

    python -m derive                        every registered module, and the course's examples, into generated/
    python -m derive --check                exit 1 if generated/ differs from a fresh derivation
    python -m derive show MODULE            print one module's derivation, step by step (MODULE or FILE.py)
    python -m derive examples               print the course's index-gymnastics examples, step by step
    python -m derive FILE.py ... --out DIR  derive the forward in each FILE.py (anywhere on disk) into DIR
    python -m derive FILE.py --order 2 --out DIR   and its second order: the kernel <name>_hvp (double backward)

Every kernel file is imported and run on random inputs (against central
differences of its own forward, and NumPy against Torch) before anything is
written; a failure is one line naming the module, the stage and the
expression, and leaves the output folder as it was. --debug adds the traceback.

Deriving FILE.py into a folder that already holds derived modules adds to it:
its DERIVATIONS.md, derivations.tex and package lists keep the modules already
there (a module derived again replaces its own part). Output cut off by its
reader (``| head``) stops the printing, not the work.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class UsageError(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _silence(stream) -> None:
    """Point the stream's descriptor at /dev/null: later prints, and the flush at exit, go nowhere."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def say(text: str, stream=None) -> None:
    """Print one line; once its reader has gone (a closed pipe), stop printing but let the work go on."""
    stream = sys.stdout if stream is None else stream
    try:
        print(text, file=stream, flush=True)
    except BrokenPipeError:
        _silence(stream)


def _progress(forwards):
    from derive.engine.emit import build

    built = []
    for n, f in enumerate(forwards, 1):
        say(f"[{n}/{len(forwards)}] {f.name}", sys.stderr)
        built.append(build(f))
    return built


def show(name: str) -> int:
    from derive import registry

    if name not in registry.MODULES and not name.endswith(".py"):
        raise UsageError(f"unknown module {name!r}; known: {', '.join(registry.MODULES)}")
    return show_forward(registry.load_path(Path(name)) if name.endswith(".py") else registry.load(name))


def show_forward(f) -> int:
    from derive.engine.emit import build
    from derive.engine.text import index_text

    b = build(f)
    print(f"{f.name}  ({f.source})\n\nforward:")
    for d in f.definitions:
        print(f"    {index_text(d.lhs)} = {index_text(d.expr)}")
    for g in b.derivation.gradients:
        print(f"\n{index_text(g.lhs)}:")
        for lhs, _, value in b.derivation.lemmas[g.name]:
            print(f"    lemma: {index_text(lhs)} = {index_text(value)}")
        for s in g.steps:
            print(f"    [{s.reason}]\n        {index_text(s.lhs)} = {index_text(s.rhs)}")
        for note in g.notes:
            print(f"    note: {note}")
    return 0


def check(files: dict, out: Path, complete: bool = True) -> int:
    """``complete``: ``files`` is all the folder should hold (else other modules' files may stay beside them)."""
    from derive.engine.emit import is_generated

    stale = [rel for rel, text in sorted(files.items())
             if not (out / rel).exists() or (out / rel).read_text(encoding="utf-8") != text]
    extra = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                   if complete and p.is_file() and is_generated(p) and p.relative_to(out).as_posix() not in files)
    for rel in stale:
        say(f"stale: {out / rel}", sys.stderr)
    for rel in extra:
        say(f"not produced any more: {out / rel}", sys.stderr)
    if stale or extra:
        say(f"derive: {out} is stale; run 'make derive'", sys.stderr)
        return 1
    say(f"{out} is up to date ({len(files)} files)")
    return 0


def _output_folder(out: Path, checking: bool) -> None:
    """Refuse, before any deriving, an --out that cannot be the output folder."""
    from derive.engine.emit import OutputError, check_writable

    try:
        if checking:  # only read: a missing folder is reported as stale, a read-only one is fine
            if out.exists() and not out.is_dir():
                raise OutputError(f"{out} is a file, not a folder")
        else:
            check_writable(out)
    except OutputError as e:
        raise UsageError(f"--out: {e}") from None


def run(args) -> int:
    from derive import registry
    from derive.engine.emit import read_fragments, render_all, write
    from derive.engine.verify import verify

    start = time.perf_counter()
    if args.target[:1] == ["show"]:
        if len(args.target) != 2:
            raise UsageError("usage: python -m derive show MODULE")
        return show(args.target[1])
    if args.order != 1 and not (args.target and args.target[0].endswith(".py")):
        raise UsageError("--order 2 applies to FILE.py targets (the built-ins take theirs from registry.SECOND_ORDER)")
    if args.target == ["examples"]:
        from derive import examples
        for f in examples.forwards():
            show_forward(f)
        return 0
    if args.target:
        if not all(t.endswith(".py") for t in args.target):
            raise UsageError(f"expected show MODULE, examples or FILE.py ..., got {' '.join(args.target)}")
        if args.out is None:
            raise UsageError("deriving a file needs --out DIR")
        _output_folder(args.out, args.check)
        kept = read_fragments(args.out)
        forwards = [registry.load_path(Path(t)) for t in args.target]
        for f in forwards:
            f.order = args.order
        seen = {}
        for f in forwards:
            if f.name in seen:
                raise UsageError(f"{f.source} and {seen[f.name]} both define a module named {f.name!r}")
            seen[f.name] = f.source
        built = _progress(forwards)
        files = render_all(built, kept=kept)
        notes = verify(built, files)
        out, names = args.out, ", ".join(f.name for f in forwards)
    else:
        out = args.out or ROOT / "generated"
        _output_folder(out, args.check)
        modules, worked = registry.build_everything(_progress)
        files = registry.render_everything((modules, worked))
        notes = verify(modules, files) + verify(worked, files, prefix="examples/")
        if notes:
            raise UsageError(f"make derive runs every Torch kernel before writing generated/: {notes[0]}")
        names = f"{len(registry.MODULES)} modules and the examples"
    for note in dict.fromkeys(notes):
        say(f"derive: note: {note}", sys.stderr)
    if args.check:
        return check(files, out, complete=not args.target)
    # Everything is rendered and run before anything is written: a failure above leaves `out` untouched.
    counts = write(files, out, remove_stale=not args.target)
    say(f"derived {names} in {time.perf_counter() - start:.1f} s: {counts['written']} written, "
        f"{counts['unchanged']} unchanged, {counts['removed']} removed ({out})")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = _Parser(prog="python -m derive", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", nargs="*", help="show MODULE | examples | FILE.py (default: every registered module)")
    p.add_argument("--out", type=Path, help="output folder (default: generated/)")
    p.add_argument("--check", action="store_true", help="fail if the output folder is stale")
    p.add_argument("--order", type=int, choices=(1, 2), default=1,
                   help="2: also the second order of each FILE.py, the kernel <name>_hvp (built-ins: registry.SECOND_ORDER)")
    p.add_argument("--debug", action="store_true", help="print the traceback of an error")
    try:
        args = p.parse_args(argv)
    except UsageError as e:
        say(f"derive: error: {e}", sys.stderr)
        return 2
    except BrokenPipeError:  # --help into a closed pipe
        _silence(sys.stdout)
        return 0
    try:
        return run(args)
    except BrokenPipeError:  # show or examples cut off by their reader: stop quietly, as Unix tools do
        _silence(sys.stdout)
        return 0
    except Exception as e:
        from derive.engine.emit import OutputError
        from derive.engine.errors import DeriveError
        from derive.registry import LoadError

        if args.debug:
            import traceback
            traceback.print_exc()
        if isinstance(e, (UsageError, LoadError, DeriveError, OutputError)):
            say(f"derive: error: {e}", sys.stderr)
        else:  # a defect of the engine, not of the forward: still one line
            text = " ".join(str(e).split())[:300]
            hint = "" if args.debug else " (run with --debug for the traceback)"
            say(f"derive: internal error: {type(e).__name__}: {text}{hint}", sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
