"""The sharpness of a trained MLP: the largest eigenvalue of its loss Hessian over a batch of training images, by
power iteration on Hessian–vector products (the measure of the PyHessian line of work).

    python -m runtime.hessian --run DIR [--best] [--samples 1000] [--iterations 20] [--seed 0] [--data_dir data/]

DIR is a run of ``python -m runtime.train`` (its checkpoint.npz, or best.npz with --best). The products come from
the derived kernels: the network is built from drop-in layers (runtime/torch_layers.py), whose double backward
is each module's ``<name>_hvp``; autograd only chains them. The same power iteration, from the same start, runs
on PyTorch's own double backward (torch.nn.functional) beside it: both eigenvalues and the seconds per product
are printed (and written to --out as JSON). Batch norm, where the MLP has it, normalises by the batch's own
statistics (its training mode), as the derived batch_norm kernels do. Everything runs in float64 on the CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from runtime.training import cli
from runtime.training.cli import CLIError, Parser


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m runtime.hessian", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, metavar="DIR", help="a folder python -m runtime.train wrote")
    p.add_argument("--best", action="store_true", help="the best validation model (best.npz), not the last")
    p.add_argument("--samples", type=int, default=1000, help="training images the loss is taken over")
    p.add_argument("--iterations", type=int, default=20, help="power iterations")
    p.add_argument("--seed", type=int, default=0, help="the start vector and the images drawn")
    p.add_argument("--data_dir", default=None, help="folder holding cifar-10-batches-py/ (default: the run's)")
    p.add_argument("--out", default="", help="write the results here as JSON")
    return p


def layers_of(net) -> list:
    """(module name, parameters by argument name, scalars) per layer of an MLP, parameters as float64 arrays."""
    from runtime.nets.modules import BatchNormModule, LinearModule

    out = []
    for layer in net.layers:
        host = {k: np.asarray(net.backend.to_numpy(v), dtype=np.float64) for k, v in layer.params.items()}
        if isinstance(layer, LinearModule):
            out.append(("linear", {"W": host["weight"], "b": host["bias"][0]}, {}))
        elif isinstance(layer, BatchNormModule):
            out.append(("batch_norm", {"gamma": host["gamma"], "beta": host["beta"]}, dict(layer.scalars)))
        else:
            out.append((layer.kernel, {}, dict(layer.scalars)))
    return out


def derived_loss(layers):
    """loss(params, x, T) through the derived kernels (drop-in layers: double backward by <name>_hvp)."""
    from runtime.torch_layers import function

    fns = [function(name, **scalars) for name, _, scalars in layers]
    loss = function("softmax_cross_entropy")

    def run(params, x, T):
        it = iter(params)
        for fn, (_, p, _) in zip(fns, layers):
            x = fn.apply(x, *[next(it) for _ in p])
        return loss.apply(x, T)
    return run


def torch_loss(layers):
    """The same loss in torch.nn.functional (PyTorch's own double backward)."""
    import torch
    import torch.nn.functional as F

    act = {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}

    def run(params, x, T):
        it = iter(params)
        for name, p, scalars in layers:
            if name == "linear":
                x = F.linear(x, next(it), next(it))
            elif name == "batch_norm":
                x = F.batch_norm(x, None, None, next(it), next(it), training=True, eps=scalars["eps"])
            elif name == "elu":
                x = F.elu(x, scalars["alpha"])
            else:
                x = act[name](x)
        return F.cross_entropy(x, T)
    return run


def top_eigenvalue(loss, params, x, T, iterations: int, start) -> tuple[float, float, list]:
    """(largest eigenvalue estimate, seconds per Hessian–vector product, the estimate per iteration)."""
    import torch

    params = [p.detach().clone().requires_grad_() for p in params]
    grads = torch.autograd.grad(loss(params, x, T), params, create_graph=True)
    v = [s.clone() for s in start]
    norm = torch.sqrt(sum((a * a).sum() for a in v))
    v = [a / norm for a in v]
    estimates, seconds = [], 0.0
    for _ in range(iterations):
        t = time.perf_counter()
        hv = torch.autograd.grad(grads, params, v, retain_graph=True)
        seconds += time.perf_counter() - t
        estimates.append(float(sum((a * b).sum() for a, b in zip(v, hv))))
        norm = torch.sqrt(sum((a * a).sum() for a in hv))
        v = [a / norm for a in hv]
    return estimates[-1], seconds / iterations, estimates


def run(args) -> dict:
    import torch

    from runtime import train
    from runtime.nets.mlp import MLP
    from runtime.training import checkpoint
    from runtime.training.data import N_CLASSES, load

    folder = Path(args.run)
    name = "best.npz" if args.best else "checkpoint.npz"
    if not (folder / name).is_file():
        raise CLIError(f"--run {folder}: no {name} there (a folder python -m runtime.train wrote)")
    if min(args.samples, args.iterations) < 1:
        raise CLIError("--samples and --iterations must be at least 1")
    state, saved = checkpoint.load(folder / name)
    cfg = train.Config(**{k: v for k, v in saved.items() if k in train.Config.__dataclass_fields__})
    data = load(args.data_dir or cfg.data_dir)
    net = MLP(data.train.x.shape[1], cfg.hidden_dims, N_CLASSES, cfg.use_batch_norm, cfg.activation,
              backend="numpy", dtype="float64", seed=cfg.seed)
    # The network's arrays are <layer>.<name>; a checkpoint also holds the optimiser's and the trainer's.
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith(("optimizer.", "trainer."))})
    layers = layers_of(net)
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(data.train.y), size=min(args.samples, len(data.train.y)), replace=False)
    x = torch.as_tensor(data.train.x[pick], dtype=torch.float64)
    T = torch.as_tensor(np.eye(N_CLASSES)[data.train.y[pick]])
    params = [torch.as_tensor(a) for _, p, _ in layers for a in p.values()]
    start = [torch.as_tensor(rng.standard_normal(p.shape)) for p in params]
    results = {}
    for label, loss in (("derived", derived_loss(layers)), ("torch", torch_loss(layers))):
        value, seconds, estimates = top_eigenvalue(loss, params, x, T, args.iterations, start)
        results[label] = {"eigenvalue": value, "seconds_per_hvp": seconds, "estimates": estimates}
        print(f"{label:8s} top Hessian eigenvalue {value:.10g}  ({seconds * 1e3:.1f} ms per Hessian-vector product)")
    rel = abs(results["derived"]["eigenvalue"] - results["torch"]["eigenvalue"]) / abs(results["torch"]["eigenvalue"])
    print(f"relative difference {rel:.2e}; {args.samples} images, {args.iterations} power iterations, "
          f"{sum(p.numel() for p in params)} parameters")
    results.update(run=str(folder), model=name, samples=int(len(pick)), iterations=args.iterations,
                   relative_difference=rel)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return results


def main(argv=None) -> int:
    return cli.main(lambda: run(parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
