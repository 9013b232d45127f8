"""Optimisers: update rules on the gradients the generated kernels computed (no derivatives here).

Both update each parameter array in place, so the modules keep reading the
same arrays; both work on NumPy and Torch arrays alike.
"""
from __future__ import annotations

import numpy as np


class SGD:
    def __init__(self, network, lr: float):
        self.network, self.lr = network, lr

    def step(self):
        for layer, k in self.network.parameters():
            layer.params[k] -= self.lr * layer.grads[k]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"SGD keeps no state, the checkpoint holds {sorted(state)[:3]}")


class Adam:
    """Adam (Kingma and Ba), as PyTorch's ``torch.optim.Adam`` computes it: the two agree in float64 to rounding.

    Torch arrays: one call of ``torch._fused_adam_``, the kernel behind ``torch.optim.Adam(fused=True)``,
    updates every parameter in one pass over memory, on the CPU or a GPU (on the CPU 3x faster
    than the foreach ops). It reads the step count from a tensor on the device, so a step never
    waits for the device and nothing in it changes from step to step on the host.
    NumPy arrays: torch.optim.Adam's operations in its order, in place, a block at a time, so
    that a block's arrays stay in the cache between operations; the only temporaries are two
    block-sized scratch rows.
    """

    BLOCK_BYTES = 1 << 17  # per array; a block's six arrays (p, g, m, v, two scratch) fit a core's L2 cache

    def __init__(self, network, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.network, self.lr, self.betas, self.eps = network, lr, betas, eps
        self.backend = b = network.backend
        zeros_like = b.torch.zeros_like if b.name == "torch" else np.zeros_like
        params = [layer.params[k] for layer, k in network.parameters()]
        # laid out as the parameters (a Linear weight is column-major): the updates walk p, g, m, v in memory order
        self.m = [zeros_like(p) for p in params]
        self.v = [zeros_like(p) for p in params]
        self.t = 0
        if b.name == "torch":
            self.t_device = b.torch.zeros((), dtype=b.torch.float32, device=b.device)  # t, as the fused kernel reads it
        else:
            self.scratch = np.empty((2, self.BLOCK_BYTES // b.dtype.itemsize), dtype=b.dtype)

    def step(self):
        self.t += 1
        pairs = self.network.parameters()
        params = [layer.params[k] for layer, k in pairs]
        grads = [layer.grads[k] for layer, k in pairs]
        (self._torch_step if self.backend.name == "torch" else self._numpy_step)(params, grads)

    def state_dict(self) -> dict:
        """Host copies: the step count and both moments of every parameter (``m.<n>``, ``v.<n>``)."""
        b = self.backend
        out = {"t": np.array(self.t)}
        for n, (m, v) in enumerate(zip(self.m, self.v)):
            out[f"m.{n}"], out[f"v.{n}"] = b.to_numpy(m).copy(), b.to_numpy(v).copy()
        return out

    def load_state_dict(self, state: dict) -> None:
        expected = set(self.state_dict())
        if set(state) != expected:
            raise ValueError(f"the optimiser state does not fit: {sorted(set(state) ^ expected)[:4]}")
        b = self.backend
        for n, (m, v) in enumerate(zip(self.m, self.v)):
            b.assign(m, b.asarray(state[f"m.{n}"]))   # in place: the moments keep their memory layout
            b.assign(v, b.asarray(state[f"v.{n}"]))
        self.t = int(state["t"])
        if b.name == "torch":
            self.t_device.fill_(self.t)

    def _torch_step(self, params, grads):
        torch = self.backend.torch
        if not hasattr(torch, "_fused_adam_"):  # a private kernel: a Torch build without it steps tensor by tensor
            return self._tensor_step(params, grads)
        # the fused kernel reads every array as flat memory: a gradient laid out otherwise is copied into p's layout
        grads = [g if g.stride() == p.stride() else torch.empty_like(p).copy_(g) for p, g in zip(params, grads)]
        self.t_device.add_(1)
        b1, b2 = self.betas
        torch._fused_adam_(params, grads, self.m, self.v, [], [self.t_device] * len(params), lr=self.lr,
                           beta1=b1, beta2=b2, weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False)

    def _tensor_step(self, params, grads):
        """torch.optim.Adam's single-tensor operations, in its order (no fused kernel)."""
        b1, b2 = self.betas
        step_size, bc2_sqrt = -(self.lr / (1 - b1 ** self.t)), (1 - b2 ** self.t) ** 0.5
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m, (v.sqrt() / bc2_sqrt).add_(self.eps), value=step_size)

    def _numpy_step(self, params, grads):
        b1, b2 = self.betas
        step_size, bc2_sqrt = -(self.lr / (1 - b1 ** self.t)), (1 - b2 ** self.t) ** 0.5  # as torch.optim.Adam
        n = self.scratch.shape[1]
        for p, g, m, v in zip(params, grads, self.m, self.v):
            if g.strides != p.strides:  # the blocks follow p's memory order: a gradient laid out otherwise is copied
                g, g_ = np.empty_like(p), g
                g[...] = g_
            p, g, m, v = (_flat(a) for a in (p, g, m, v))
            for i in range(0, p.size, n):
                pb, gb, mb, vb = p[i:i + n], g[i:i + n], m[i:i + n], v[i:i + n]
                s, u = self.scratch[:, :pb.size]
                np.subtract(gb, mb, out=s); s *= 1 - b1; mb += s                  # m.lerp_(g, 1 - b1)
                vb *= b2; np.multiply(gb, 1 - b2, out=s); s *= gb; vb += s       # v.mul_(b2).addcmul_(g, g, 1 - b2)
                np.sqrt(vb, out=s); s /= bc2_sqrt; s += self.eps                  # denom = sqrt(v) / bc2_sqrt + eps
                np.multiply(mb, step_size, out=u); u /= s; pb += u                # p.addcdiv_(m, denom, step_size)


def _flat(a):
    """a's elements in memory order as a 1-D view (a copy would lose the in-place update)."""
    if not (a.flags.c_contiguous or a.flags.f_contiguous):
        raise ValueError("Adam updates dense (C- or Fortran-ordered) arrays only")
    return a.ravel(order="K")


OPTIMIZERS = {"adam": Adam, "sgd": SGD}
