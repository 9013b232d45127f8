"""Derived modules as drop-in PyTorch layers: ``torch.autograd.Function``s whose backward is the generated kernel.

    f = function("layer_norm", eps=1e-5)          # a torch.autograd.Function; scalars bound here (default: SCALARS)
    Y = f.apply(X, gamma, beta)                   # its ARGUMENTS, in order; a tuple for several OUTPUTS
    h, c = function("lstm_cell").apply(X, h0, c0, W_ih, W_hh, b_ih, b_hh)
    layer = DerivedLayer("linear", W=torch.randn(4, 3), b=torch.zeros(4))
    Y = layer(X)                                  # an nn.Module; W and b are nn.Parameters
    mine = DerivedLayer("prelu", kernels="my_kernels", a=torch.full((4,), 0.25))   # python -m derive ... --out my_kernels

Scalars are bound when the function is made because ``Function.apply`` takes no keywords. Nothing here
differentiates: ``backward`` calls ``<module>_backward`` of the kernels with what ``forward`` saved.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from runtime.kernels.calling import find

# The keyword that names the kernels' folder: a module's parameter or scalar of this name cannot be given by keyword.
FOLDER = "kernels"


def _folder(kernels) -> str | None:
    return None if kernels is None else str(Path(kernels).resolve())


def function(name: str, /, *, kernels=None, **scalars) -> type:
    """The ``torch.autograd.Function`` of a derived module: built-in, or from ``kernels``, a folder that
    ``python -m derive FILE.py --out DIR`` wrote. ``scalars`` (its SCALARS, by keyword) are bound into it;
    those not given keep the module's defaults. ``apply`` takes the module's ARGUMENTS, in order."""
    return _function(name, _folder(kernels), tuple(sorted(scalars.items())))


@functools.lru_cache(maxsize=None)
def _function(name: str, folder: str | None, bound: tuple) -> type:
    k = find(name, "torch", folder)
    args = tuple(k.ARGUMENTS)
    unknown = [s for s, _ in bound if s not in k.SCALARS]
    if unknown:
        have = ", ".join(f"{s}={v!r}" for s, v in k.SCALARS.items()) or "none"
        raise TypeError(f"{name}: no scalar {unknown[0]!r} (its scalars: {have})")
    scalars = {**k.SCALARS, **dict(bound)}
    differentiable = {f"d{n}": n for n in (*k.INPUTS, *k.PARAMS)}
    usage = f"{name}: apply takes {', '.join(args)}" + (
        f" (its scalars are bound by function({name!r}, {', '.join(f'{s}=…' for s in scalars)}))" if scalars else "")

    outputs = tuple(k.OUTPUTS)

    def forward(ctx, *values):
        if len(values) != len(args):
            raise TypeError(f"{usage}; {len(values)} given")
        env = k.forward(dict(zip(args, values)), **scalars)
        ctx.save_for_backward(*[env[n] for n in k.SAVED])
        # An output autograd passes no gradient for comes as None, which the kernels read as zero.
        ctx.set_materialize_grads(False)
        return env[outputs[0]] if len(outputs) == 1 else tuple(env[n] for n in outputs)

    def backward(ctx, *upstream):
        needs = dict(zip(args, ctx.needs_input_grad))
        flags = {flag: needs[differentiable[g]] for g, flag in k.OPTIONAL.items()}
        if len(outputs) > 1:
            upstream = dict(zip(k.UPSTREAMS, upstream))
        elif upstream[0] is None:
            return (None,) * len(args)
        else:   # a loss's upstream gradient is the scalar dL: the kernel multiplies by it
            upstream = upstream[0]
        grads = k.backward(upstream, dict(zip(k.SAVED, ctx.saved_tensors)), **scalars, **flags)
        by_arg = {differentiable[g]: v for g, v in grads.items()}
        return tuple(by_arg.get(a) if needs[a] else None for a in args)

    # Named when made, so that autograd's node is too (grad_fn=<LayerNormFunctionBackward>).
    Derived = type("".join(w.title() for w in name.split("_")) + "Function", (torch.autograd.Function,),
                   {"forward": staticmethod(forward), "backward": staticmethod(backward)})
    Derived.ARGUMENTS, Derived.SCALARS = args, dict(scalars)
    return Derived


class DerivedLayer(torch.nn.Module):
    """``nn.Module`` around a derived module (built-in, or from ``kernels=DIR``): its PARAMS are ``nn.Parameter``s
    given at construction, its SCALARS keywords (defaults: the module's)."""

    def __init__(self, name: str, /, *, kernels=None, **params_and_scalars):
        super().__init__()
        k = find(name, "torch", _folder(kernels))
        if FOLDER in k.PARAMS:  # (a scalar of that name keeps its default)
            raise TypeError(f"{name}: its parameter {FOLDER!r} has the name of the keyword that names the kernels' "
                            f"folder, so no value can be given for it: rename it in the forward")
        unknown = [n for n in params_and_scalars if n not in k.PARAMS and n not in k.SCALARS]
        if unknown:
            raise TypeError(f"{name}: no parameter or scalar {unknown[0]!r} (its parameters: "
                            f"{', '.join(k.PARAMS) or 'none'}; its scalars: {', '.join(k.SCALARS) or 'none'})")
        missing = [p for p in k.PARAMS if p not in params_and_scalars]
        if missing:
            raise TypeError(f"{name}: give initial values for {', '.join(missing)}")
        # The layer's own state goes under names starting with _, which no tensor of a forward may take.
        self._kernel_name, self._kernels = name, kernels
        self._scalars = {s: params_and_scalars[s] for s in k.SCALARS if s in params_and_scalars}
        self._fn = function(name, kernels=kernels, **self._scalars)
        for p in k.PARAMS:
            self.register_parameter(p, torch.nn.Parameter(torch.as_tensor(params_and_scalars[p])))
        self._arguments, self._params = k.ARGUMENTS, k.PARAMS

    def forward(self, *inputs_and_consts):
        """The module's inputs and constants, in the order of its ARGUMENTS (parameters left out)."""
        wanted = [a for a in self._arguments if a not in self._params]
        if len(inputs_and_consts) != len(wanted):
            raise TypeError(f"{self._kernel_name}: the layer takes {', '.join(wanted) or 'nothing'}; "
                            f"{len(inputs_and_consts)} given")
        given = iter(inputs_and_consts)
        values = [getattr(self, a) if a in self._params else next(given) for a in self._arguments]
        return self._fn.apply(*values)

    def extra_repr(self):
        bound = "".join(f", {s}={v!r}" for s, v in self._fn.SCALARS.items())
        where = f", kernels={str(self._kernels)!r}" if self._kernels is not None else ""
        return f"{self._kernel_name}{bound}{where}"
