"""Derived modules as drop-in PyTorch layers: ``torch.autograd.Function``s whose backward is the generated kernel.

    f = function("layer_norm", eps=1e-5)          # a torch.autograd.Function; scalars bound here (default: SCALARS)
    Y = f.apply(X, gamma, beta)                   # its ARGUMENTS, in order; a tuple for several OUTPUTS
    h, c = function("lstm_cell").apply(X, h0, c0, W_ih, W_hh, b_ih, b_hh)
    layer = DerivedLayer("linear", W=torch.randn(4, 3), b=torch.zeros(4))
    Y = layer(X)                                  # an nn.Module; W and b are nn.Parameters
    mine = DerivedLayer("prelu", kernels="my_kernels", a=torch.full((4,), 0.25))   # python -m derive ... --out my_kernels

Scalars are bound when the function is made because ``Function.apply`` takes no keywords. Nothing here
differentiates: ``backward`` calls ``<module>_backward`` of the kernels with what ``forward`` saved, through an
autograd Function whose own backward is ``<module>_hvp`` (modules derived to the second order), so that a
gradient made with ``create_graph=True`` can be differentiated again.
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
    second = _backward_function(name, k, args, scalars, differentiable)

    def forward(ctx, *values):
        if len(values) != len(args):
            raise TypeError(f"{usage}; {len(values)} given")
        env = k.forward(dict(zip(args, values)), **scalars)
        # The arguments themselves, so that the backward can be differentiated again (double backward).
        ctx.save_for_backward(*values, *[env[n] for n in k.SAVED if n not in args])
        ctx.shapes = {n: env[n].shape for n in outputs}
        # An output autograd passes no gradient for comes as None, which the kernels read as zero.
        ctx.set_materialize_grads(False)
        return env[outputs[0]] if len(outputs) == 1 else tuple(env[n] for n in outputs)

    def backward(ctx, *upstream):
        if all(u is None for u in upstream):
            return (None,) * len(args)
        saved = ctx.saved_tensors
        values, extra = saved[:len(args)], saved[len(args):]
        if torch.is_grad_enabled():   # create_graph: an omitted upstream becomes zeros autograd can follow
            like = next(u for u in upstream if u is not None)
            upstream = tuple(u if u is not None else like.new_zeros(ctx.shapes[o]) for u, o in zip(upstream, outputs))
        needs = dict(zip(args, ctx.needs_input_grad))
        grads = second.apply(needs, *values, *upstream, *extra)
        by_arg = dict(zip([differentiable[g] for g in k.GRADIENTS], grads))
        return tuple(by_arg.get(a) if needs[a] else None for a in args)

    # Named when made, so that autograd's node is too (grad_fn=<LayerNormFunctionBackward>).
    Derived = type("".join(w.title() for w in name.split("_")) + "Function", (torch.autograd.Function,),
                   {"forward": staticmethod(forward), "backward": staticmethod(backward)})
    Derived.ARGUMENTS, Derived.SCALARS = args, dict(scalars)
    return Derived


def _backward_function(name: str, k, args: tuple, scalars: dict, differentiable: dict) -> type:
    """The backward of a derived module as an autograd Function of the arguments and upstreams (and what the
    forward saved): its forward is ``<name>_backward``; its backward, ``<name>_hvp`` of modules derived to the
    second order (``python -m derive --order 2``; the built-ins in registry.SECOND_ORDER): double backward."""
    hvp = getattr(k.k, f"{name}_hvp", None)
    extra = tuple(n for n in k.SAVED if n not in args)
    ups = tuple(k.UPSTREAMS)

    def forward(ctx, needs, *inputs):
        values = dict(zip(args + ups + extra, inputs))
        flags = {flag: needs[differentiable[g]] for g, flag in k.OPTIONAL.items()}
        upstream = {u: values[u] for u in ups} if len(ups) > 1 else values[ups[0]]
        grads = k.backward(upstream, {n: values[n] for n in k.SAVED}, **scalars, **flags)
        ctx.save_for_backward(*inputs)
        ctx.needs = needs
        ctx.set_materialize_grads(False)
        return tuple(grads[g] if grads[g] is not None else torch.zeros(()) for g in k.GRADIENTS)

    def backward(ctx, *directions):
        if all(v is None for v in directions):
            return (None,) * (1 + len(args) + len(ups) + len(extra))
        if hvp is None:
            raise RuntimeError(f"{name}: double backward needs the module's second order, the kernel {name}_hvp "
                               f"(derive it with python -m derive FILE.py --order 2)")
        values = dict(zip(args + ups + extra, ctx.saved_tensors))
        wanted = dict(zip(args + ups, ctx.needs_input_grad[1:]))
        flags = {flag: wanted[k.HVP_WRT[r]] for r, flag in k.HVP_OPTIONAL.items()}
        out = hvp(*directions, **{n: values[n] for n in k.HVP_ARGUMENTS}, **scalars, **flags)
        by = {k.HVP_WRT[r]: v for r, v in zip(k.HVP_RESULTS, out if len(k.HVP_RESULTS) > 1 else (out,))}
        return (None, *[by.get(n) if wanted[n] else None for n in args + ups], *([None] * len(extra)))

    return type("".join(w.title() for w in name.split("_")) + "Backward", (torch.autograd.Function,),
                {"forward": staticmethod(forward), "backward": staticmethod(backward)})


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
