"""Derived modules as drop-in PyTorch layers: ``torch.autograd.Function``s whose backward is the generated kernel.

    f = function("layer_norm")                    # a torch.autograd.Function
    Y = f.apply(X, gamma, beta)                   # arguments in the module's order (INPUTS, PARAMS, CONSTS)
    layer = DerivedLayer("linear", W=torch.randn(4, 3), b=torch.zeros(4))
    Y = layer(X)                                  # an nn.Module; W and b are nn.Parameters

Nothing here differentiates: ``backward`` calls ``<module>_backward`` from
generated/torch with what ``forward`` saved.
"""
from __future__ import annotations

import functools
import importlib
import inspect

import torch


def _kernels(name: str):
    return importlib.import_module(f"generated.torch.{name}")


@functools.lru_cache(maxsize=None)
def function(name: str) -> type:
    """The ``torch.autograd.Function`` of a derived module."""
    k = _kernels(name)
    fwd, bwd = getattr(k, f"{name}_forward"), getattr(k, f"{name}_backward")
    args = (*k.INPUTS, *k.PARAMS, *k.CONSTS)
    differentiable = (*k.INPUTS, *k.PARAMS)
    wanted = tuple(inspect.signature(bwd).parameters)
    scalar_names = tuple(k.SCALARS)

    class Derived(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *values):
            if len(values) != len(args) + len(scalar_names):
                raise TypeError(f"{name}: expected {', '.join(args + scalar_names)}")
            tensors = dict(zip(args, values))
            scalars = dict(zip(scalar_names, values[len(args):]))
            out = fwd(**{a: tensors[a] for a in inspect.signature(fwd).parameters if a in tensors}, **scalars)
            outs = out if isinstance(out, tuple) else (out,)
            saved = {**tensors, **dict(zip((k.OUTPUT, *k.SAVED), outs))}
            keep = [n for n in wanted if n in saved]
            ctx.names, ctx.scalars = keep, {n: v for n, v in scalars.items() if n in wanted}
            ctx.save_for_backward(*[saved[n] for n in keep])
            for n in k.SAVED:  # intermediates are implementation detail, not outputs of the layer
                ctx.mark_non_differentiable(saved[n])
            return outs[0]

        @staticmethod
        def backward(ctx, grad):
            saved = dict(zip(ctx.names, ctx.saved_tensors))
            needs = dict(zip(args, ctx.needs_input_grad))
            extra = {}
            if "dY" in wanted:
                extra["dY"] = grad
            if f"need_d{k.INPUTS[0]}" in wanted:
                extra[f"need_d{k.INPUTS[0]}"] = needs[k.INPUTS[0]]
            grads = bwd(**saved, **extra, **ctx.scalars)
            grads = grads if isinstance(grads, tuple) else (grads,)
            if "dY" not in wanted:  # a scalar loss: the kernel gives dL/dX; chain with the incoming grad
                grads = tuple(None if g is None else g * grad for g in grads)
            by_name = dict(zip(differentiable, grads))
            return (*[by_name.get(a) if needs[a] else None for a in args], *[None] * len(scalar_names))

    Derived.__name__ = Derived.__qualname__ = "".join(w.title() for w in name.split("_")) + "Function"
    return Derived


class DerivedLayer(torch.nn.Module):
    """``nn.Module`` around a derived module: its PARAMS are ``nn.Parameter``s given at construction."""

    def __init__(self, name: str, **params_and_scalars):
        super().__init__()
        k = _kernels(name)
        self.name, self.fn = name, function(name)
        missing = [p for p in k.PARAMS if p not in params_and_scalars]
        if missing:
            raise TypeError(f"{name}: give initial values for {', '.join(missing)}")
        for p in k.PARAMS:
            self.register_parameter(p, torch.nn.Parameter(torch.as_tensor(params_and_scalars[p])))
        self.param_names = k.PARAMS
        self.scalars = [params_and_scalars.get(s, default) for s, default in k.SCALARS.items()]

    def forward(self, *inputs_and_consts):
        k = _kernels(self.name)
        inputs, consts = inputs_and_consts[:len(k.INPUTS)], inputs_and_consts[len(k.INPUTS):]
        return self.fn.apply(*inputs, *[getattr(self, p) for p in self.param_names], *consts, *self.scalars)

    def extra_repr(self):
        return self.name
