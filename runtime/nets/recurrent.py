"""Recurrent networks that run a derived cell (lstm_cell, gru_cell) over time.

The loop over time is bookkeeping, not derivation: the forward calls the cell's forward kernel once per
step and keeps what each step's backward reads; the backward walks the steps in reverse, handing each
step's dh (and dc) to the one before and adding the weights' gradients over the steps. Truncation
(``truncate``) stops the gradient from reaching further back than that many steps.
"""
from __future__ import annotations

import numpy as np

from runtime.nets.modules import NUMPY, LinearModule, Module, SoftmaxCrossEntropyModule
from runtime.nets.network import Network

CELLS = ("lstm_cell", "gru_cell")


class RecurrentModule(Module):
    """A cell run over the time axis of x (S, T, I) from a zero state; ``forward`` returns the last hidden state.

    Parameters as torch.nn.LSTMCell / GRUCell names them (``weight_ih`` (G·H, I), ``weight_hh`` (G·H, H),
    ``bias_ih``, ``bias_hh``; G = 4 for the LSTM, 3 for the GRU), drawn from U(±1/√H) as PyTorch does.
    """

    arguments = {"weight_ih": "W_ih", "weight_hh": "W_hh", "bias_ih": "b_ih", "bias_hh": "b_hh"}

    def __init__(self, cell, input_size, hidden_size, backend=None, rng=None, truncate=None):
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r} ({', '.join(CELLS)})")
        if truncate is not None and truncate < 1:
            raise ValueError(f"truncate must be at least 1 step (or None: every step), got {truncate}")
        self.kernel = cell
        super().__init__(backend)
        rng = rng or np.random.default_rng()
        gates = 4 if cell == "lstm_cell" else 3
        bound = 1.0 / np.sqrt(hidden_size)
        shapes = {"weight_ih": (gates * hidden_size, input_size), "weight_hh": (gates * hidden_size, hidden_size),
                  "bias_ih": (gates * hidden_size,), "bias_hh": (gates * hidden_size,)}
        self.params = {k: self.backend.asarray(rng.uniform(-bound, bound, s)) for k, s in shapes.items()}
        self.grads = {k: self.backend.zeros(v.shape) for k, v in self.params.items()}
        self.hidden_size, self.truncate = hidden_size, truncate
        # The cell's state besides h (the LSTM's c), by the kernel's names.
        self.states = [a for a in self.kernels.INPUTS if a not in ("X",)]
        self.steps = []

    def forward(self, x):
        """x: (S, T, I); the hidden state after the last step, (S, H)."""
        S, T = x.shape[0], x.shape[1]
        state = {n: self.backend.zeros((S, self.hidden_size)) for n in self.states}
        params = self.kernel_params()
        self.steps = []
        for t in range(T):
            env = self.kernels.forward({"X": x[:, t], **state, **params})
            self.steps.append(env)
            # The outputs, in order, are the next step's state (h → h0, c → c0).
            state = {n: env[o] for n, o in zip(self.states, self.kernels.OUTPUTS)}
        return self.steps[-1][self.kernels.OUTPUTS[0]]

    def clear_cache(self):
        self.steps = []

    def backward(self, dout, sgd_lr=None):
        """dout: dL/dh of the last step. Fills ``grads`` (summed over the steps); returns None (no input gradient
        is needed by the tasks here)."""
        total = {p: None for p in self.arguments}
        upstream = {self.kernels.UPSTREAMS[0]: dout}
        steps = self.steps if self.truncate is None else self.steps[-self.truncate:]
        for n, env in enumerate(reversed(steps)):
            last = n == len(steps) - 1
            flags = {f: False for g, f in self.kernels.OPTIONAL.items() if g == "dX" or last}
            g = self.kernels.backward(upstream if len(self.kernels.UPSTREAMS) > 1 else upstream[self.kernels.UPSTREAMS[0]],
                                      env, **flags)
            for p, k in self.arguments.items():
                total[p] = g[f"d{k}"] if total[p] is None else total[p] + g[f"d{k}"]
            if not last:   # each state's gradient becomes the previous step's upstream (dh0 → dh, dc0 → dc)
                upstream = {u: g[f"d{s}"] for u, s in zip(self.kernels.UPSTREAMS, self.states)}
        if sgd_lr is not None:
            for p in self.params:
                self.params[p] -= sgd_lr * total[p]
                self.grads[p] = None
        else:
            self.grads = total
        return None


class RecurrentNetwork(Network):
    """A recurrent cell over the sequence, then a linear map of its last hidden state to class logits, trained
    with softmax cross-entropy (the course's recurrent assignment: predict a palindrome's last digit)."""

    def __init__(self, cell, input_size, hidden_size, classes, backend=None, seed=0, truncate=None):
        self.backend = backend or NUMPY
        rng = np.random.default_rng(seed)
        self.cell = RecurrentModule(cell, input_size, hidden_size, self.backend, rng, truncate)
        self.head = LinearModule(hidden_size, classes, backend=self.backend, rng=rng, init="torch")
        self.layers = [self.cell, self.head]
        self.loss = SoftmaxCrossEntropyModule(self.backend)
