"""A stack of modules: forward through them, backward in reverse, parameters and state by name."""
from __future__ import annotations

from runtime.nets.modules import BatchNormModule


class Network:
    """``layers`` (each with ``params``/``grads``, ``forward``/``backward``) and a ``loss`` on top."""

    layers: list
    loss: object
    backend: object

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout, sgd_lr=None):
        """dL/dx; fills each layer's ``grads``, or with ``sgd_lr`` takes a plain SGD step in place instead
        (each kernel adds −lr·gradient straight into its parameter; ``grads`` then hold None)."""
        for layer in reversed(self.layers):
            dout = layer.backward(dout, sgd_lr)
        return dout

    def clear_cache(self):
        for layer in self.layers:
            layer.clear_cache()

    def train(self):
        for layer in self.layers:
            layer.train()

    def eval(self):
        for layer in self.layers:
            layer.eval()

    def parameters(self):
        """(layer, name) for every parameter, in a fixed order (what an optimiser updates)."""
        return [(layer, k) for layer in self.layers for k in layer.params]

    # -- state -----------------------------------------------------------------
    def state_dict(self) -> dict:
        """Host copies of every parameter and running statistic, by ``<layer>.<name>``."""
        out = {}
        for n, layer in enumerate(self.layers):
            for k, p in layer.params.items():
                out[f"{n}.{k}"] = self.backend.to_numpy(p).copy()
            if isinstance(layer, BatchNormModule):
                out[f"{n}.running_mean"] = self.backend.to_numpy(layer.running_mean).copy()
                out[f"{n}.running_var"] = self.backend.to_numpy(layer.running_var).copy()
        return out

    def load_state_dict(self, state: dict):
        expected = set(self.state_dict())
        if set(state) != expected:
            raise ValueError(f"checkpoint does not fit this model: {sorted(set(state) ^ expected)[:4]} ...")
        for key, value in state.items():
            n, name = key.split(".", 1)
            layer = self.layers[int(n)]
            arr = self.backend.asarray(value)
            if name in layer.params:
                if tuple(layer.params[name].shape) != tuple(value.shape):
                    raise ValueError(f"checkpoint {key} has shape {value.shape}, model {tuple(layer.params[name].shape)}")
                self.backend.assign(layer.params[name], arr)  # in place: the parameter keeps its memory layout
            else:
                if tuple(getattr(layer, name).shape) != tuple(value.shape):
                    raise ValueError(f"checkpoint {key} has shape {value.shape}, model {tuple(getattr(layer, name).shape)}")
                self.backend.assign(getattr(layer, name), arr)
