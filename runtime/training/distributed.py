"""Data-parallel training on torch.distributed: the generated kernels inside DistributedDataParallel.

Under ``torchrun`` (WORLD_SIZE > 1) each process builds the same network from the same seed and steps on its
own slice of every global batch. The network's parameters are registered as ``nn.Parameter``s that share memory
with the kernels' arrays, and its forward and backward are one ``torch.autograd.Function`` whose backward is the
generated backward kernels; ``DistributedDataParallel`` wraps that module, so its hooks average each gradient
across the processes while the backward runs (gloo on CPUs, NCCL on GPUs). The optimiser then updates the shared
arrays in place.

Batch norm keeps per-process statistics, as plain DDP does: each process normalises by its own slice's mean and
variance and keeps its own running statistics; rank 0's are the ones saved.

One process (no torchrun): ``Single``, the kernels called directly (no autograd), SGD fusable into them.
"""
from __future__ import annotations

import functools
import os
from contextlib import contextmanager


class Single:
    """One process: every example is this rank's; gradients need no averaging."""

    rank, world_size = 0, 1

    def device(self, requested: str) -> str:
        return requested

    def prepare(self, net) -> None:
        pass

    def forward_backward(self, net, x, y, sgd_lr=None):
        """(logits, mean loss) of the batch; the layers' ``grads`` filled (or SGD taken in place with ``sgd_lr``)."""
        logits = net.forward(x)
        loss = net.loss.forward(logits, y)   # integer labels, read as they are (no one-hot rows)
        net.backward(net.loss.backward(logits, y), sgd_lr=sgd_lr)
        return logits, loss

    def stop_requested(self, here: bool) -> bool:
        return here

    def all_sum(self, values):
        """``values`` (a host float64 array) summed over the processes."""
        return values

    def close(self) -> None:
        pass


class DataParallel(Single):
    """A process of a torchrun job (``torch.distributed`` initialised by ``session``)."""

    def __init__(self):
        import torch.distributed as dist

        self.dist = dist
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.module = None

    def device(self, requested: str) -> str:
        import torch

        cuda = requested.startswith("cuda") or (requested == "auto" and torch.cuda.is_available())
        return f"cuda:{self.local_rank}" if cuda else "cpu"

    def prepare(self, net) -> None:
        if net.backend.name != "torch":
            raise ValueError("data-parallel training needs the torch backend")
        from torch.nn.parallel import DistributedDataParallel

        self.module = DistributedDataParallel(_autograd()[0](net))   # broadcasts rank 0's parameters

    def forward_backward(self, net, x, y, sgd_lr=None):
        if sgd_lr is not None:
            raise ValueError("data-parallel training averages gradients before the update: no fused SGD")
        logits = self.module(x)
        loss = _autograd()[1].apply(logits, y, net.loss)
        loss.backward()   # the kernels' backward; DDP averages every parameter's gradient meanwhile
        for (layer, k), p in zip(net.parameters(), self.module.module.params):
            layer.grads[k] = p.grad
            p.grad = None  # the next backward writes fresh gradients, never accumulates
        return logits.detach(), loss.detach()

    def stop_requested(self, here: bool) -> bool:
        """A stop on any process stops all of them at the same step (a lone stop would hang the others)."""
        import torch

        flag = torch.tensor([1.0 if here else 0.0])   # a CPU tensor: gloo reduces it (session sets it up)
        self.dist.all_reduce(flag, op=self.dist.ReduceOp.MAX)
        return bool(flag.item())

    def all_sum(self, values):
        import torch

        t = torch.as_tensor(values, dtype=torch.float64)   # on the CPU: gloo
        self.dist.all_reduce(t)
        return t.cpu().numpy()

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()


@functools.lru_cache(maxsize=None)
def _autograd():
    """The autograd pieces, defined when torch is first needed (deriving and the NumPy runtime never import it)."""
    import torch

    class KernelFunction(torch.autograd.Function):
        """The network's forward and backward kernels as one autograd Function of (x, *parameters)."""

        @staticmethod
        def forward(ctx, net, x, *params):
            ctx.net = net
            return net.forward(x)

        @staticmethod
        def backward(ctx, dlogits):
            net = ctx.net
            net.backward(dlogits.contiguous())
            return (None, None, *[layer.grads[k] for layer, k in net.parameters()])

    class KernelModule(torch.nn.Module):
        """The network as an nn.Module: its parameters are the kernels' arrays (shared memory)."""

        def __init__(self, net):
            super().__init__()
            self.net = net
            self.params = torch.nn.ParameterList(
                [torch.nn.Parameter(layer.params[k], requires_grad=True) for layer, k in net.parameters()])

        def forward(self, x):
            return KernelFunction.apply(self.net, x, *self.params)

    class Loss(torch.autograd.Function):
        """The loss kernel (mean over this process's slice) as an autograd Function of the logits."""

        @staticmethod
        def forward(ctx, logits, y, loss):
            ctx.save_for_backward(logits, y)
            ctx.loss = loss
            return loss.forward(logits, y)

        @staticmethod
        def backward(ctx, g):
            logits, y = ctx.saved_tensors
            return ctx.loss.backward(logits, y) * g, None, None

    return KernelModule, Loss


@contextmanager
def session():
    """``Single`` for one process; under torchrun, ``torch.distributed`` initialised (NCCL when every process
    has a GPU, gloo otherwise) and torn down at the end."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield Single()
        return
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():  # gloo for what stays on the CPU (--device cpu), NCCL for the GPUs
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group("gloo")
    group = DataParallel()
    try:
        yield group
    finally:
        group.close()
