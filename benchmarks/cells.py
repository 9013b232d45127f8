"""Seconds per step of a recurrent cell, forward and backward: the generated kernels against torch.nn with autograd.

    python -m benchmarks.cells [--batch 128] [--input 10] [--hidden 128] [--rounds 7] [--calls 50]

Each contender computes h and c (h for the GRU) from the same inputs and weights, then every gradient from
upstreams dh (and dc), in float32 on one CPU thread:

  generated torch   generated/torch/<cell>.py, forward then backward
  generated numpy   generated/numpy/<cell>.py, the same
  autograd          torch.nn.LSTMCell / GRUCell, then backward through autograd

The contenders take turns, ``--calls`` steps each per round; the ratio to autograd is taken within a round
and its median over the rounds printed (below 1 is faster).
"""
from __future__ import annotations

import argparse
import importlib
import statistics

import numpy as np
import torch

from benchmarks.timing import seconds

CELLS = {"lstm_cell": (torch.nn.LSTMCell, 4), "gru_cell": (torch.nn.GRUCell, 3)}


def _generated(name, backend, arrays):
    """A step on the generated kernels: forward, then backward from fixed upstreams (both outputs')."""
    k = importlib.import_module(f"generated.{backend}.{name}")
    forward, backward = getattr(k, f"{name}_forward"), getattr(k, f"{name}_backward")
    args = {n: arrays[n] for n in k.ARGUMENTS}
    ups = [arrays["d" + o] for o in k.OUTPUTS]

    def step():
        outs = forward(*[args[n] for n in k.ARGUMENTS])
        env = {**args, **dict(zip(k.RETURNS, outs))}
        return backward(*ups, **{n: env[n] for n in k.SAVED})
    return step


def _autograd(name, arrays, hidden):
    module, _ = CELLS[name]
    cell = module(arrays["X"].shape[1], hidden)
    with torch.no_grad():
        for p in ("W_ih", "W_hh", "b_ih", "b_hh"):
            getattr(cell, p.replace("W_", "weight_").replace("b_", "bias_")).copy_(torch.from_numpy(arrays[p]))
    X, h0, c0 = (torch.from_numpy(arrays[n]).requires_grad_() for n in ("X", "h0", "c0"))
    dh, dc = torch.from_numpy(arrays["dh"]), torch.from_numpy(arrays["dc"])

    def step():
        cell.zero_grad()
        if name == "lstm_cell":
            h, c = cell(X, (h0, c0))
            torch.autograd.backward((h, c), (dh, dc))
        else:
            cell(X, h0).backward(dh)
    return step


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--input", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50)
    a = parser.parse_args(argv)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"one step forward and backward, batch {a.batch}, input {a.input}, hidden {a.hidden}, float32, "
          f"one thread; median over {a.rounds} rounds of {a.calls} steps")
    for name, (_, gates) in CELLS.items():
        S, I, H = a.batch, a.input, a.hidden
        shapes = {"X": (S, I), "h0": (S, H), "c0": (S, H), "W_ih": (gates * H, I), "W_hh": (gates * H, H),
                  "b_ih": (gates * H,), "b_hh": (gates * H,), "dh": (S, H), "dc": (S, H)}
        arrays = {n: (0.3 * rng.standard_normal(s)).astype(np.float32) for n, s in shapes.items()}
        tensors = {n: torch.from_numpy(v) for n, v in arrays.items()}
        contenders = {"generated torch": _generated(name, "torch", tensors),
                      "generated numpy": _generated(name, "numpy", arrays),
                      "autograd": _autograd(name, arrays, H)}
        for step in contenders.values():   # warm-up
            step()
        times = {c: [] for c in contenders}
        for _ in range(a.rounds):
            for c, step in contenders.items():
                times[c].append(seconds(lambda: [step() for _ in range(a.calls)]) / a.calls)
        for c in contenders:
            ratio = statistics.median(t / b for t, b in zip(times[c], times["autograd"]))
            print(f"{name:10s} {c:16s} {1e3 * statistics.median(times[c]):8.3f} ms/step   {ratio:5.2f}x autograd")


if __name__ == "__main__":
    main()
