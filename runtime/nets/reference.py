"""A network in torch.nn (the ConvNet's twin, the recurrent network's) trained by autograd and torch.optim, behind
the interface the Trainer steps (``--backend autograd``: the baseline the generated kernels are measured against,
same weights, same batches)."""
from __future__ import annotations

import numpy as np


class Reference:
    """A network (forward, modes, state) and its own step (``forward_backward``: autograd), one process: what
    the Trainer asks of a network and of its ``dist`` (runtime/training/distributed.py ``Single``)."""

    rank, world_size = 0, 1

    def __init__(self, net, optimizer: str, lr: float, copy=None):
        """``copy(net, device)``: the torch.nn module with ``net``'s weights (default: the ConvNet's)."""
        import torch

        if copy is None:
            from runtime.nets.torch_convnet import torch_copy as copy

        self.torch, self.backend = torch, net.backend
        self.model = copy(net, device=net.backend.device)
        make = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer]
        self.optimizer = _Optimizer(make(self.model.parameters(), lr=lr), self.model)

    # -- the step (the Trainer calls it as its ``dist``) ------------------------------------------
    def prepare(self, net):
        pass

    def stop_requested(self, here: bool) -> bool:
        return here

    def all_sum(self, values):
        return values

    def forward_backward(self, net, x, y, sgd_lr=None):
        logits = self.model(x)
        loss = self.torch.nn.functional.cross_entropy(logits, y)
        self.optimizer.zero_grad()
        loss.backward()
        return logits.detach(), loss.detach()

    # -- the network ------------------------------------------------------------------------------
    def forward(self, x):
        with self.torch.no_grad():
            return self.model(x)

    def train(self):
        self.model.train()

    def eval(self):
        self.model.eval()

    def clear_cache(self):
        pass

    def state_dict(self) -> dict:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict):
        self.model.load_state_dict({k: self.torch.as_tensor(v) for k, v in state.items()})


class _Optimizer:
    """A torch.optim optimiser with the state interface of runtime/training/optim.py (flat host arrays)."""

    def __init__(self, opt, model):
        self.opt, self.params = opt, list(model.parameters())

    def zero_grad(self):
        self.opt.zero_grad(set_to_none=True)

    def step(self):
        self.opt.step()

    def state_dict(self) -> dict:
        out = {}
        for n, p in enumerate(self.params):
            for k, v in self.opt.state.get(p, {}).items():
                out[f"{n}.{k}"] = v.detach().cpu().numpy().copy() if hasattr(v, "detach") else np.array(v)
        return out

    def load_state_dict(self, state: dict):
        import torch

        for n, p in enumerate(self.params):
            keys = [k for k in state if k.split(".", 1)[0] == str(n)]
            if keys:
                # Moments on the parameter's device and dtype; the step count stays a CPU tensor, as torch.optim
                # keeps it for a non-capturable optimiser.
                self.opt.state[p] = {k.split(".", 1)[1]: torch.as_tensor(state[k]) if not state[k].ndim else
                                     torch.as_tensor(state[k]).to(device=p.device, dtype=p.dtype) for k in keys}
