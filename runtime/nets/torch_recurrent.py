"""The recurrent network in torch.nn (nn.LSTM / nn.GRU and nn.Linear), with a RecurrentNetwork's weights: the
baseline ``--backend autograd`` trains, and what the tests compare the generated kernels' steps with."""
from __future__ import annotations


def torch_copy(net, device="cpu", dtype=None):
    """An ``nn.Module`` computing what ``net`` (a RecurrentNetwork) computes, holding copies of its weights:
    the cell over the sequence (batch first) from a zero state, then the linear map of the last hidden state."""
    import torch
    from torch import nn

    b = net.backend
    dtype = dtype or getattr(torch, b.dtype_name)

    def t(a):
        return torch.as_tensor(b.to_numpy(a).copy()).to(device=device, dtype=dtype)

    cell = net.cell
    make = {"lstm_cell": nn.LSTM, "gru_cell": nn.GRU}[cell.kernel]
    weight_ih = cell.params["weight_ih"]

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = make(weight_ih.shape[1], cell.hidden_size, batch_first=True)
            self.head = nn.Linear(cell.hidden_size, net.head.params["weight"].shape[0])

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.head(out[:, -1])

    model = Twin().to(device=device, dtype=dtype)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(model.rnn, f"{name}_l0").copy_(t(cell.params[name]))
        model.head.weight.copy_(t(net.head.params["weight"]))
        model.head.bias.copy_(t(net.head.params["bias"])[0])
    return model
