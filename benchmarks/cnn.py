"""Seconds per 100 training steps of the ConvNet: the generated runtimes against torch.nn with autograd.

    python -m benchmarks.cnn [--steps 10] [--batch_size 32] [--device auto|cpu|cuda] [--skip-numpy]

All contenders train the same small VGG (Adam, lr 1e-4, float32) in this one
process on the same random batches (speed does not depend on the pixels):
the generated NumPy runtime (CPU), the generated Torch runtime and a torch.nn
copy with autograd and torch.optim.Adam, on the CPU and, when one is there, on
the GPU. Each runs two warm-up steps, then --steps timed steps.

It then times each convolution of the network alone in the NumPy runtime
(forward and backward at the training shapes) and compares its rate with
the CPU's single-precision GEMM rate on the same matrix sizes, measured here.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from benchmarks.timing import sync


def batches(n, batch_size, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch_size, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, batch_size))
            for _ in range(n)]


def generated_seconds(backend, device, data) -> float:
    from runtime.convnet import ConvNet
    from runtime.optim import Adam

    net = ConvNet(backend=backend, device=device, dtype="float32", seed=0)
    b = net.backend
    opt = Adam(net, 1e-4)
    data = [(b.asarray(x), b.asarray(y)) for x, y in data]

    def step(x, y):
        logits = net.forward(x)
        loss = net.loss.forward(logits, y)
        net.backward(net.loss.backward(logits, y))
        opt.step()
        return loss

    for x, y in data[:2]:
        step(x, y)
    sync(b.device)
    start = time.perf_counter()
    for x, y in data[2:]:
        step(x, y)
    sync(b.device)
    return (time.perf_counter() - start) / (len(data) - 2)


def autograd_seconds(device, data) -> float:
    import torch

    from runtime.convnet import ConvNet
    from runtime.torch_convnet import torch_copy

    model = torch_copy(ConvNet(backend="numpy", dtype="float32", seed=0), device=device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    data = [(torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)) for x, y in data]

    def step(x, y):
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for x, y in data[:2]:
        step(x, y)
    sync(device)
    start = time.perf_counter()
    for x, y in data[2:]:
        step(x, y)
    sync(device)
    return (time.perf_counter() - start) / (len(data) - 2)


def conv_rates(batch_size, repeats=3) -> list:
    """Per convolution of the network: (shape, NumPy GFLOP/s for forward + backward, sgemm GFLOP/s)."""
    from runtime.calling import Kernels
    from runtime.convnet import VGG_SMALL

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
        products = 2 if channels == 3 else 3   # forward, dW and (past the input layer) dX
        flops = products * 2 * batch_size * item * size * size * channels * 9
        best = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            env = k.forward({"X": X, "W": W, "b": b}, stride=1, padding=1)
            k.backward(np.ones_like(env["Y"]), env, stride=1, padding=1, need_dX=channels != 3)
            best = min(best, time.perf_counter() - start)
        # The same three products as plain sgemm on contiguous matrices: (S·H·W, C·9) × (C·9, O).
        A = rng.standard_normal((batch_size * size * size, channels * 9)).astype(np.float32)
        B = rng.standard_normal((channels * 9, item)).astype(np.float32)
        G = rng.standard_normal((batch_size * size * size, item)).astype(np.float32)
        gemm = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            A @ B, A.T @ G
            if products == 3:
                G @ B.T
            gemm = min(gemm, time.perf_counter() - start)
        rows.append((f"{channels}->{item} @ {size}x{size}", flops / best / 1e9, flops / gemm / 1e9))
        channels = item
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cnn", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10, help="timed steps per contender (after two warm-up steps)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--skip-numpy", action="store_true", help="leave out the NumPy runtime and its conv rates")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        print("error: --steps and --batch_size must be at least 1", file=sys.stderr)
        return 2
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: no CUDA device is available", file=sys.stderr)
        return 2
    gpu = torch.cuda.is_available() and args.device in ("auto", "cuda")
    data = batches(args.steps + 2, args.batch_size)
    print(f"bench-cnn: small VGG, batch {args.batch_size}, Adam, float32; seconds per 100 steps, mean of "
          f"{args.steps} steps after 2 warm-up; CPU with {torch.get_num_threads()} threads"
          + (f"; GPU {torch.cuda.get_device_name(0)}" if gpu else "; no GPU"))
    rows = []
    if args.device != "cuda":
        base = autograd_seconds("cpu", data)
        rows.append(("torch.nn + autograd (CPU)", base, base))
        if not args.skip_numpy:
            rows.append(("generated numpy (CPU)", generated_seconds("numpy", "cpu", data), base))
        rows.append(("generated torch (CPU)", generated_seconds("torch", "cpu", data), base))
    if gpu:
        base = autograd_seconds("cuda", data)
        rows.append(("torch.nn + autograd (GPU)", base, base))
        rows.append(("generated torch (GPU)", generated_seconds("torch", "cuda", data), base))
    print(f"{'contender':30s} {'s/100 steps':>12s} {'vs autograd':>12s}")
    for label, seconds, base in rows:
        print(f"{label:30s} {100 * seconds:12.1f} {base / seconds:11.2f}x")
    print("(vs autograd: autograd's seconds / the contender's, on the same device; above 1 is faster)")
    if args.device != "cuda" and not args.skip_numpy:
        print("\nNumPy runtime, each convolution alone (forward + dX + dW) against sgemm on the same products:")
        print(f"{'layer':24s} {'conv GFLOP/s':>13s} {'sgemm GFLOP/s':>14s} {'fraction':>9s}")
        for shape, conv, gemm in conv_rates(args.batch_size):
            print(f"{shape:24s} {conv:13.1f} {gemm:14.1f} {conv / gemm:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
