"""The same ConvNet in ``torch.nn`` (autograd), with the generated runtime's weights: the reference and baseline."""
from __future__ import annotations

from runtime.nets.modules import BatchNorm2dModule, Conv2dModule, FlattenModule, LinearModule, MaxPool2dModule, ReLUModule


def torch_copy(net, device="cpu", dtype=None):
    """An ``nn.Sequential`` layer for layer like ``net`` (a ConvNet), holding copies of its weights and statistics."""
    import torch
    from torch import nn

    b = net.backend
    dtype = dtype or getattr(torch, b.dtype_name)

    def t(a):
        return torch.as_tensor(b.to_numpy(a).copy()).to(device=device, dtype=dtype)

    layers = []
    for layer in net.layers:
        if isinstance(layer, Conv2dModule):
            w = layer.params["weight"]
            m = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=layer.scalars["stride"],
                          padding=layer.scalars["padding"])
            m.weight.data, m.bias.data = t(w), t(layer.params["bias"])
        elif isinstance(layer, BatchNorm2dModule):
            m = nn.BatchNorm2d(layer.params["gamma"].shape[0], eps=layer.scalars["eps"], momentum=layer.momentum)
            m.weight.data, m.bias.data = t(layer.params["gamma"]), t(layer.params["beta"])
            m.running_mean.data, m.running_var.data = t(layer.running_mean), t(layer.running_var)
        elif isinstance(layer, ReLUModule):
            m = nn.ReLU()
        elif isinstance(layer, MaxPool2dModule):
            sc = layer.scalars
            m = nn.MaxPool2d(sc["kernel_size"], stride=sc["stride"], padding=sc["padding"])
        elif isinstance(layer, FlattenModule):
            m = nn.Flatten()
        elif isinstance(layer, LinearModule):
            w = layer.params["weight"]
            m = nn.Linear(w.shape[1], w.shape[0])
            m.weight.data, m.bias.data = t(w), t(layer.params["bias"]).reshape(-1)
        else:
            raise TypeError(f"no torch.nn counterpart for {layer!r}")
        layers.append(m)
    return nn.Sequential(*layers).to(device=device, dtype=dtype)
