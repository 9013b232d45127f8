"""The forward fuzzer: draw forwards (grammar.py), derive each as a user would, check, classify.

    python -m tests.fuzzing.runner --count 2000 [--seed 0] [--timeout 60] [--out DIR] [--jobs 1]
    python -m tests.fuzzing.runner --replay DIR/wrong/fz_0012     # re-check one reproducer

Each forward is derived by ``python -m derive FILE --out DIR`` in a subprocess (a hang is killed at
``--timeout`` seconds of CPU time) and classified:

    derived   derived, and both backends' forward and every gradient agree with torch.autograd through
              the independent reference (reference.py) in float64, on random sizes and data
    refused   one ``derive: error: <module>: <stage>: ...`` line, non-zero exit
    internal  ``derive: internal error``, a traceback, or any other exit
    hung      still deriving after the timeout's CPU seconds (or four times them on the wall clock)
    wrong     the kernels disagree with the reference, raise, or give NaN where it is finite
    unchecked the reference itself is not finite or no small sizes fit (a fault of the grammar, not the engine)

At the end: counts by outcome and the distinct refusal messages (normalised); every internal, hung,
wrong and unchecked forward, and every refusal at the verify stage (kernels the engine printed that failed
its own check), is kept under ``DIR/<outcome>/<name>/`` (forward.py, spec.json, symptom.txt).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUTCOMES = ("derived", "refused", "internal", "hung", "wrong", "unchecked")
KEPT = ("internal", "hung", "wrong", "unchecked")
TOL = 1e-10  # as tests/test_user_forwards.py
CHECKS = 2   # random draws of sizes and data per forward


def draw_specs(count: int, seed: int) -> list:
    """``count`` forwards from the grammar, reproducibly for a seed (Hypothesis, generation only)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    from tests.fuzzing import grammar

    specs = []

    @hseed(seed)
    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(grammar.forwards())
    def collect(spec):
        specs.append(spec)

    collect()
    return specs


# -- deriving --------------------------------------------------------------------------------------

def _cpu_limit(seconds):
    def limit():
        resource.setrlimit(resource.RLIMIT_CPU, (int(seconds), int(seconds) + 5))
    return limit


def derive(forward_file: Path, out: Path, timeout: float):
    """(outcome or None when derived, the error line or symptom).

    ``timeout`` is CPU seconds (SIGXCPU ends the derivation), so that a loaded machine does not turn a
    slow derivation into a hang; the wall clock stops it at four times that."""
    p = subprocess.Popen([sys.executable, "-m", "derive", str(forward_file), "--out", str(out)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=_cpu_limit(timeout))
    try:
        stdout, stderr = p.communicate(timeout=4 * timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return "hung", f"still deriving after {4 * timeout:g} s of wall time"
    if p.returncode == -signal.SIGXCPU:
        return "hung", f"still deriving after {timeout:g} s of CPU time"
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not re.match(r"\[\d+/\d+\] ", ln)]
    if p.returncode == 0:
        return None, ""
    if len(lines) == 1 and lines[0].startswith("derive: error: ") and "Traceback" not in stderr:
        return "refused", lines[0]
    return "internal", (lines[-1] if lines else f"exit {p.returncode}, no message")


def normalise(line: str) -> str:
    """A refusal as its kind: ``<stage>: <problem>``, without module, expressions or numbers.

    The line is ``<module>: <stage>: <expression>: <problem>``; a problem may itself quote an expression
    after an exception's name (``PrintError: δ(j - 1, q): a delta ...``), which is dropped too."""
    parts = line.removeprefix("derive: error: ").split(": ")
    if len(parts) < 3:
        return re.sub(r"\d+", "N", ": ".join(parts))
    named = [n for n, p in enumerate(parts[2:-1], 2) if re.fullmatch(r"(raises )?\w*(Error|Exception|Warning)", p)]
    problem = f"{parts[named[-1]]}: {parts[-1]}" if named else parts[-1]
    return re.sub(r"\d+", "N", f"{parts[1]}: {problem}")[:200]


# -- checking ----------------------------------------------------------------------------------------

SIZES = {"S": (1, 3), "D": (1, 4), "O": (1, 3), "C": (1, 2), "K": (1, 3), "L": (1, 9), "Hi": (1, 6), "Wi": (1, 6)}


def draw_sizes(spec, rng):
    from tests.fuzzing.reference import extents

    for _ in range(200):
        sizes = {d: int(rng.integers(SIZES[d][0], SIZES[d][1] + 1)) for d in spec["dims"]}
        derived = extents(spec, sizes)
        if all(n >= 1 for n in derived.values()):
            return {**sizes, **derived}
    return None


def draw_arrays(spec, sizes, rng):
    out = {}
    for t in spec["tensors"]:
        shape = tuple(sizes[d] for d in t["dims"])
        out[t["name"]] = rng.uniform(0.5, 2.0, shape) if t["positive"] else rng.standard_normal(shape)
    return out


class Wrong(Exception):
    pass


class Unchecked(Exception):
    pass


def _close(got, want, what):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise Wrong(f"{what}: shape {got.shape}, expected {want.shape}")
    if np.isnan(want).any():
        raise Unchecked(f"{what}: the reference is NaN")
    if np.isnan(got).any():
        raise Wrong(f"{what}: NaN where the reference is finite")
    same = got == want
    with np.errstate(invalid="ignore"):
        err = float(np.max(np.where(same, 0.0, np.abs(got - want)), initial=0.0))
    scale = float(np.max(np.abs(np.where(np.isfinite(want), want, 0.0)), initial=0.0))
    if not err <= TOL * (1.0 + scale):
        raise Wrong(f"{what}: max abs error {err:.3e} (reference scale {scale:.3e})")


def _autograd(spec, arrays, scalars, upstream):
    import torch

    from tests.fuzzing.reference import reference

    wrt = [t["name"] for t in spec["tensors"] if t["role"] in ("input", "param")]
    xs = {n: torch.tensor(a, dtype=torch.float64, requires_grad=n in wrt) for n, a in arrays.items()}
    y = reference(spec, xs, scalars)
    if not y.requires_grad:  # constant in every argument (branches of constants, sign): zero gradients
        grads = [None] * len(wrt)
    else:
        grads = torch.autograd.grad(y, [xs[n] for n in wrt], torch.as_tensor(upstream, dtype=torch.float64),
                                    allow_unused=True)
    return y.detach().numpy(), {f"d{n}": (np.zeros_like(arrays[n]) if g is None else g.numpy())
                                for n, g in zip(wrt, grads)}


def _kernels(spec, name, backend, arrays, scalars, upstream, out):
    import torch

    from runtime.kernels.calling import Kernels, load_file

    k = Kernels(name, backend, loaded=load_file(out / backend / f"{name}.py"))
    wrap = (lambda a: a) if backend == "numpy" else (lambda a: torch.tensor(a, dtype=torch.float64))
    env = k.forward({n: wrap(a) for n, a in arrays.items()}, **scalars)
    up = upstream if np.ndim(upstream) == 0 else wrap(upstream)
    grads = k.backward(up, env, **scalars)
    as_np = lambda v: v if isinstance(v, np.ndarray) or np.isscalar(v) else v.detach().numpy()
    return as_np(env[k.OUTPUTS[0]]), {g: as_np(v) for g, v in grads.items()}


def check(spec, name, out: Path, seed: int = 0):
    """None when both backends agree with autograd through the reference; raises Wrong or Unchecked."""
    scalars = {**spec["scalars"], **spec["integers"]}
    for n in range(CHECKS):
        rng = np.random.default_rng([seed, n])
        sizes = draw_sizes(spec, rng)
        if sizes is None:
            raise Unchecked("no small sizes give every output extent at least 1")
        arrays = draw_arrays(spec, sizes, rng)
        ranges = {i: r if isinstance(r, int) else sizes[r] if r in sizes else int(scalars[r])
                  for i, r in spec["indices"].items()}
        out_shape = tuple(ranges[i] for i in spec["output"]["indices"])
        upstream = rng.standard_normal(out_shape) if out_shape else 0.8
        try:
            ref_y, ref_grads = _autograd(spec, arrays, scalars, upstream)
        except Exception as e:  # noqa: BLE001 - a reference that cannot run is the grammar's fault
            raise Unchecked(f"the reference raises {type(e).__name__}: {e}") from e
        # Infinities are compared as values (a window wholly off its tensor has the maximum −inf).
        if np.isnan(ref_y).any() or any(np.isnan(g).any() for g in ref_grads.values()):
            raise Unchecked("the reference is NaN on the drawn data")
        for backend in ("numpy", "torch"):
            try:
                # An untaken branch may warn (sqrt of a negative); the values are what is checked.
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    y, grads = _kernels(spec, name, backend, arrays, scalars, upstream, out)
            except Exception as e:  # noqa: BLE001 - a kernel that raises is a wrong kernel
                msg = " ".join(str(e).split())[:300]
                raise Wrong(f"{backend} kernels raise {type(e).__name__}: {msg} (sizes {sizes})") from e
            _close(y, ref_y, f"{backend} Y (sizes {sizes})")
            if set(grads) != set(ref_grads):
                raise Wrong(f"{backend} gradients {sorted(grads)}, expected {sorted(ref_grads)}")
            for g in ref_grads:
                _close(grads[g], ref_grads[g], f"{backend} {g} (sizes {sizes})")


# -- one forward, start to end ---------------------------------------------------------------------------

def write_case(spec, name, folder: Path) -> Path:
    from tests.fuzzing.grammar import source

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "forward.py").write_text(source(spec, name), encoding="utf-8")
    (folder / "spec.json").write_text(json.dumps({"name": name, "spec": spec}, indent=1), encoding="utf-8")
    return folder / "forward.py"


def settle(spec, name, out: Path, outcome, detail):
    """The outcome of a derivation into ``out`` (``derive``'s answer), its kernels checked when it derived."""
    if outcome:
        return outcome, detail
    if not (out / "numpy" / f"{name}.py").exists() or not (out / "torch" / f"{name}.py").exists():
        return "internal", "derived (exit 0) but no kernel files written"
    try:
        check(spec, name, out)
    except Wrong as e:
        return "wrong", str(e)
    except Unchecked as e:
        return "unchecked", str(e)
    return "derived", ""


def classify(spec, name, folder: Path, timeout: float):
    """(outcome, detail) for one forward written to ``folder``."""
    forward_file = write_case(spec, name, folder)
    return settle(spec, name, folder / "kernels", *derive(forward_file, folder / "kernels", timeout))


def run(count: int, seed: int, out: Path, timeout: float = 60.0, jobs: int = 1, keep: bool = False,
        log=print) -> dict:
    """Fuzz ``count`` forwards; returns {"counts": Counter, "refusals": Counter, "kept": [(outcome, name, detail)]}."""
    from tests.fuzzing.grammar import source

    # Hypothesis draws some forwards more than once (the simplest ones): draw more, keep ``count`` distinct.
    specs = draw_specs(count + count // 3 + 5, seed)
    seen, unique, duplicates = set(), [], 0
    for spec in specs:
        if len(unique) == count:
            break
        text = source(spec, "x")
        duplicates += text in seen
        if text not in seen:
            seen.add(text)
            unique.append(spec)
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    counts, refusals, kept = collections.Counter(), collections.Counter(), []
    counts["duplicate"] = duplicates
    names = [f"fz_{n:04d}" for n in range(len(unique))]
    start = time.time()

    def derive_one(args):
        spec, name = args
        folder = work / name
        write_case(spec, name, folder)
        return derive(folder / "forward.py", folder / "kernels", timeout)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for n, ((spec, name), (outcome, detail)) in enumerate(
                zip(zip(unique, names), pool.map(derive_one, zip(unique, names))), 1):
            folder = work / name
            outcome, detail = settle(spec, name, folder / "kernels", outcome, detail)
            counts[outcome] += 1
            if outcome == "refused":
                refusals[normalise(detail)] += 1
            # A refusal at the verify stage is one line, but it means the engine printed kernels that do
            # not run or disagree with themselves: kept too, for whoever fixes the printer.
            late = outcome == "refused" and normalise(detail).startswith("verify:")
            if outcome in KEPT or late:
                dest = out / ("refused-at-verify" if late else outcome) / name
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir(parents=True)
                for f in ("forward.py", "spec.json"):
                    shutil.copy(folder / f, dest / f)
                (dest / "symptom.txt").write_text(detail + "\n", encoding="utf-8")
                kept.append(("refused-at-verify" if late else outcome, name, detail))
            if not keep:
                shutil.rmtree(folder, ignore_errors=True)
            line = f"[{n}/{len(unique)}] {name} {outcome}"
            if outcome == "refused":  # the kind in full (the summary's), then the start of the line
                line += f" [{normalise(detail)}]"
            if outcome != "derived":
                line += f": {detail[:220]}"
            log(f"{line}  ({time.time() - start:.0f} s)")
    return {"counts": counts, "refusals": refusals, "kept": kept}


def report(result, out: Path, log=print):
    counts = result["counts"]
    log("\noutcomes: " + ", ".join(f"{o} {counts.get(o, 0)}" for o in OUTCOMES)
        + f" (of {sum(counts[o] for o in OUTCOMES)} distinct forwards; {counts['duplicate']} duplicate draws skipped)")
    late = sum(1 for o, _, _ in result["kept"] if o == "refused-at-verify")
    if late:
        log(f"of the refusals, {late} at the verify stage (kernels printed that failed the engine's own check)")
    if result["refusals"]:
        log(f"\ndistinct refusals ({len(result['refusals'])}):")
        for msg, n in result["refusals"].most_common():
            log(f"  {n:5d}  {msg}")
    if result["kept"]:
        log(f"\nreproducers in {out}/<outcome>/<name>/ (forward.py, spec.json, symptom.txt):")
        for outcome, name, detail in result["kept"]:
            log(f"  {outcome:9s} {name}: {detail[:200]}")


def replay(folder: Path, timeout: float):
    data = json.loads((folder / "spec.json").read_text(encoding="utf-8"))
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"fuzz-replay-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    outcome, detail = classify(data["spec"], data["name"], scratch, timeout)
    print(f"{data['name']}: {outcome}{': ' + detail if detail else ''}")
    return 0 if outcome in ("derived", "refused") else 1


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tests.fuzzing.runner", description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=200, help="forwards to draw")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0, help="CPU seconds before a derivation counts as hung")
    p.add_argument("--jobs", type=int, default=1, help="derivations at once")
    p.add_argument("--out", type=Path, default=None, help="folder for reproducers (default /tmp/fuzz-<seed>)")
    p.add_argument("--keep", action="store_true", help="keep every forward's folder (work/), not only failures")
    p.add_argument("--replay", type=Path, default=None, help="re-check one reproducer folder")
    a = p.parse_args(argv)
    if a.replay:
        return replay(a.replay, a.timeout)
    out = a.out or Path(f"/tmp/fuzz-{a.seed}")
    out.mkdir(parents=True, exist_ok=True)
    print(f"fuzzing {a.count} forwards, seed {a.seed}; reproducers in {out}", flush=True)
    result = run(a.count, a.seed, out, a.timeout, a.jobs, a.keep, log=lambda s: print(s, flush=True))
    report(result, out)
    bad = sum(result["counts"][o] for o in ("internal", "hung", "wrong"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
