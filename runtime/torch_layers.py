"""Derived modules as drop-in PyTorch layers: ``torch.autograd.Function``s whose backward is the generated kernel.

    f = function("layer_norm")                    # a torch.autograd.Function
    Y = f.apply(X, gamma, beta)                   # its ARGUMENTS in order, then its SCALARS
    layer = DerivedLayer("linear", W=torch.randn(4, 3), b=torch.zeros(4))
    Y = layer(X)                                  # an nn.Module; W and b are nn.Parameters

Nothing here differentiates: ``backward`` calls ``<module>_backward`` from
generated/torch with what ``forward`` saved.
"""
from __future__ import annotations

import functools

import torch

from runtime.kernels.calling import Kernels


def _kernels(name: str) -> Kernels:
    return Kernels(name, "torch")


@functools.lru_cache(maxsize=None)
def function(name: str) -> type:
    """The ``torch.autograd.Function`` of a derived module."""
    k = _kernels(name)
    args, scalar_names = k.ARGUMENTS, tuple(k.SCALARS)
    differentiable = {f"d{n}": n for n in (*k.INPUTS, *k.PARAMS)}

    class Derived(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *values):
            if len(values) != len(args) + len(scalar_names):
                raise TypeError(f"{name}: expected {', '.join(args + scalar_names)}")
            scalars = dict(zip(scalar_names, values[len(args):]))
            env = k.forward(dict(zip(args, values)), **scalars)
            ctx.scalars = scalars
            ctx.save_for_backward(*[env[n] for n in k.SAVED])
            return env[k.RETURNS[0]]

        @staticmethod
        def backward(ctx, grad):
            needs = dict(zip(args, ctx.needs_input_grad))
            flags = {flag: needs[differentiable[g]] for g, flag in k.OPTIONAL.items()}
            # A loss's upstream gradient is the scalar dL: the kernel multiplies by it.
            grads = k.backward(grad, dict(zip(k.SAVED, ctx.saved_tensors)), **ctx.scalars, **flags)
            by_arg = {differentiable[g]: v for g, v in grads.items()}
            return (*[by_arg.get(a) if needs[a] else None for a in args], *[None] * len(scalar_names))

    Derived.__name__ = Derived.__qualname__ = "".join(w.title() for w in name.split("_")) + "Function"
    return Derived


class DerivedLayer(torch.nn.Module):
    """``nn.Module`` around a derived module: its PARAMS are ``nn.Parameter``s given at construction."""

    def __init__(self, name: str, /, **params_and_scalars):
        super().__init__()
        k = _kernels(name)
        # The layer's own state goes under names starting with _, which no tensor of a forward may take.
        self._kernel_name, self._fn = name, function(name)
        missing = [p for p in k.PARAMS if p not in params_and_scalars]
        if missing:
            raise TypeError(f"{name}: give initial values for {', '.join(missing)}")
        for p in k.PARAMS:
            self.register_parameter(p, torch.nn.Parameter(torch.as_tensor(params_and_scalars[p])))
        self._arguments, self._params = k.ARGUMENTS, k.PARAMS
        self._scalars = [params_and_scalars.get(s, default) for s, default in k.SCALARS.items()]

    def forward(self, *inputs_and_consts):
        """The module's inputs and constants, in the order of its ARGUMENTS (parameters left out)."""
        given = iter(inputs_and_consts)
        values = [getattr(self, a) if a in self._params else next(given) for a in self._arguments]
        return self._fn.apply(*values, *self._scalars)

    def extra_repr(self):
        return self._kernel_name
