"""Seconds per 100 training steps of the ConvNet: the generated runtimes against torch.nn with autograd.

    python -m benchmarks.cnn [--steps 10] [--rounds 5] [--batch_size 32] [--device auto|cpu|cuda]
                             [--repeats 5] [--skip-numpy]

All contenders train the same small VGG (Adam, lr 1e-4, float32) in this one
process on the same random batches (speed does not depend on the pixels):
the generated NumPy runtime (CPU), the generated Torch runtime and a torch.nn
copy with autograd and torch.optim.Adam, on the CPU and, when one is there, on
the GPU. Each contender is built once and keeps its model and optimiser.

After two warm-up steps each, the contenders take turns: each round runs
--steps steps of every contender in turn, so a machine that slows down
part-way slows every contender alike. A contender's speed vs autograd is
autograd's seconds / its seconds in the same round, on the same device
(above 1 is faster); the median over the --rounds rounds is printed.

It then times each convolution of the network alone in the NumPy runtime
(forward, and backward: dW and, past the input layer, dX, at the training
shapes) and, alternating with it, plain sgemm on the same products:
A (S·H·W, C·9) × B (C·9, O) for the forward, Aᵀ × G and G × Bᵀ for the
backward. Each is timed --repeats times; the fraction columns are sgemm's
seconds / the convolution's (its GFLOP/s / sgemm's), median over repeats.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from benchmarks.timing import sync


def batches(n, batch_size, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch_size, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, batch_size))
            for _ in range(n)]


class Contender:
    """One model and optimiser on ``device``, stepping through the shared batches in order (cycling)."""

    def __init__(self, device, data):
        self.device, self.data, self.i = device, data, 0

    def steps(self, n):
        for _ in range(n):
            self.step(*self.data[self.i % len(self.data)])
            self.i += 1
        sync(self.device)


class Generated(Contender):
    def __init__(self, backend, device, data):
        from runtime.nets.convnet import ConvNet
        from runtime.training.optim import Adam

        self.net = ConvNet(backend=backend, device=device, dtype="float32", seed=0)
        self.opt = Adam(self.net, 1e-4)
        b = self.net.backend
        super().__init__(b.device, [(b.asarray(x), b.asarray(y)) for x, y in data])

    def step(self, x, y):
        net = self.net
        logits = net.forward(x)
        net.loss.forward(logits, y)
        net.backward(net.loss.backward(logits, y))
        self.opt.step()


class Autograd(Contender):
    """torch.nn copy of the same ConvNet + autograd + torch.optim.Adam, data already on the device."""

    def __init__(self, device, data):
        import torch

        from runtime.nets.convnet import ConvNet
        from runtime.nets.torch_convnet import torch_copy

        self.model = torch_copy(ConvNet(backend="numpy", dtype="float32", seed=0), device=device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        super().__init__(device, [(torch.as_tensor(x, device=device), torch.as_tensor(y, device=device))
                                  for x, y in data])

    def step(self, x, y):
        loss = self.loss_fn(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def run(contenders: dict, steps: int, rounds: int) -> dict:
    """Seconds per 100 steps of each contender, one list entry per round."""
    for c in contenders.values():
        c.steps(2)
    times = {label: [] for label in contenders}
    for r in range(rounds):
        for label, c in contenders.items():
            start = time.perf_counter()
            c.steps(steps)
            times[label].append(100 * (time.perf_counter() - start) / steps)
        print(f"  round {r + 1}/{rounds} (s/100 steps): " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in times.items()),
              file=sys.stderr)
    return times


def speedups(times: dict, baseline: dict) -> dict:
    """Per contender: median over rounds of its baseline's seconds / its seconds in the same round."""
    return {label: statistics.median(b / t for b, t in zip(times[baseline[label]], ts)) for label, ts in times.items()}


def conv_rates(batch_size, repeats=5) -> list:
    """Per convolution of the network: (shape, conv GFLOP/s, sgemm GFLOP/s, fraction, forward fraction,
    backward fraction); rates from median seconds, fractions the median of sgemm / conv seconds per repeat."""
    from runtime.kernels.calling import Kernels
    from runtime.nets.convnet import VGG_SMALL

    k = Kernels("conv2d", "numpy")
    rng = np.random.default_rng(0)
    rows, channels, size = [], 3, 32
    for item in VGG_SMALL:
        if item == "pool":
            size = (size + 2 - 3) // 2 + 1
            continue
        X = rng.standard_normal((batch_size, channels, size, size)).astype(np.float32)
        W = rng.standard_normal((item, channels, 3, 3)).astype(np.float32)
        b = np.zeros(item, np.float32)
        dY = rng.standard_normal((batch_size, item, size, size)).astype(np.float32)
        need_dX = channels != 3   # the input layer's dX feeds nobody
        # The same products as plain sgemm on contiguous matrices: (S·H·W, C·9) × (C·9, O) and its gradients.
        A = rng.standard_normal((batch_size * size * size, channels * 9)).astype(np.float32)
        B = rng.standard_normal((channels * 9, item)).astype(np.float32)
        G = rng.standard_normal((batch_size * size * size, item)).astype(np.float32)

        def conv():
            t0 = time.perf_counter()
            env = k.forward({"X": X, "W": W, "b": b}, stride=1, padding=1)
            t1 = time.perf_counter()
            k.backward(dY, env, stride=1, padding=1, need_dX=need_dX)
            return t1 - t0, time.perf_counter() - t1

        def gemm():
            t0 = time.perf_counter()
            A @ B
            t1 = time.perf_counter()
            A.T @ G
            if need_dX:
                G @ B.T
            return t1 - t0, time.perf_counter() - t1

        conv(), gemm()   # warm-up: first-call allocations and caches
        # Alternate conv and sgemm so that a slow spell of the host falls on both.
        pairs = [(conv(), gemm()) for _ in range(repeats)]
        fwd_flops = 2 * batch_size * item * size * size * channels * 9
        flops = fwd_flops * (3 if need_dX else 2)
        med = lambda f: statistics.median(f(c, g) for c, g in pairs)
        rows.append((f"{channels}->{item} @ {size}x{size}",
                     flops / med(lambda c, g: sum(c)) / 1e9, flops / med(lambda c, g: sum(g)) / 1e9,
                     med(lambda c, g: sum(g) / sum(c)), med(lambda c, g: g[0] / c[0]), med(lambda c, g: g[1] / c[1])))
        channels = item
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cnn", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10, help="steps per contender in each round")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds, --steps steps of each contender per round")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--repeats", type=int, default=5, help="timings of each convolution and its sgemm reference")
    p.add_argument("--skip-numpy", action="store_true", help="leave out the NumPy runtime and its conv rates")
    args = p.parse_args(argv)
    if min(args.steps, args.rounds, args.batch_size, args.repeats) < 1:
        print("error: --steps, --rounds, --batch_size and --repeats must be at least 1", file=sys.stderr)
        return 2
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: no CUDA device is available", file=sys.stderr)
        return 2
    gpu = torch.cuda.is_available() and args.device in ("auto", "cuda")
    data = batches(max(args.steps, 2), args.batch_size)
    contenders, baseline = {}, {}   # label -> contender, label -> the autograd label on its device
    if args.device != "cuda":
        contenders["torch.nn + autograd (CPU)"] = Autograd("cpu", data)
        if not args.skip_numpy:
            contenders["generated numpy (CPU)"] = Generated("numpy", "cpu", data)
        contenders["generated torch (CPU)"] = Generated("torch", "cpu", data)
    if gpu:
        contenders["torch.nn + autograd (GPU)"] = Autograd("cuda", data)
        contenders["generated torch (GPU)"] = Generated("torch", "cuda", data)
    for label in contenders:
        baseline[label] = "torch.nn + autograd (GPU)" if label.endswith("(GPU)") else "torch.nn + autograd (CPU)"
    print(f"bench-cnn: small VGG, batch {args.batch_size}, Adam, float32; seconds per 100 steps over {args.rounds} "
          f"rounds of {args.steps} steps per contender, after 2 warm-up; CPU with {torch.get_num_threads()} threads"
          + (f"; GPU {torch.cuda.get_device_name(0)}" if gpu else "; no GPU"))
    times = run(contenders, args.steps, args.rounds)
    speed = speedups(times, baseline)
    print(f"{'contender':30s} {'s/100 steps':>12s} {'min–max':>15s} {'vs autograd':>12s}")
    for label, ts in times.items():
        spread = f"{min(ts):.1f}–{max(ts):.1f}"
        print(f"{label:30s} {statistics.median(ts):12.1f} {spread:>15s} {speed[label]:11.2f}x")
    print("(s/100 steps: median over rounds. vs autograd: autograd's seconds / the contender's in the same round, "
          "on the same device, median over rounds; above 1 is faster)")
    if args.device != "cuda" and not args.skip_numpy:
        print("\nNumPy runtime, each convolution alone (forward + dX + dW) against sgemm on the same products, "
              f"alternating, median of {args.repeats}:")
        print(f"{'layer':24s} {'conv GFLOP/s':>13s} {'sgemm GFLOP/s':>14s} {'fraction':>9s} {'forward':>8s} "
              f"{'backward':>9s}")
        for shape, conv, gemm, frac, fwd, bwd in conv_rates(args.batch_size, args.repeats):
            print(f"{shape:24s} {conv:13.1f} {gemm:14.1f} {frac:9.2f} {fwd:8.2f} {bwd:9.2f}")
        print("(fraction: sgemm seconds / conv seconds = conv GFLOP/s / sgemm GFLOP/s; forward, backward: the same "
              "for the forward product alone and for dW + dX alone)")
    parts = []
    for where in ("CPU", "GPU"):
        labels = [f"{name} ({where})" for name in ("generated torch", "generated numpy")]
        ratios = [f"{label.split(' (')[0]} {speed[label]:.2f}x autograd" for label in labels if label in speed]
        if ratios:
            parts.append(", ".join(ratios) + f" ({where})")
    print("\nsummary: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
