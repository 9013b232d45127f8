"""A training step recorded once and replayed: on a GPU, the whole step is one CUDA-graph launch.

The step (forward, loss, backward with the SGD update fused into the kernels)
reads its batch from two fixed buffers; each call copies the batch in and
replays the recording. What makes that valid is checked by the tests on the
CPU, where the same buffers and warm-up are used without recording (``graph``
is None): the step keeps no state outside arrays it updates in place
(parameters through ``into``, batch-norm running statistics), and the warm-up
steps leave no trace on the model. The learning rate and training mode are
fixed into the recording.
"""
from __future__ import annotations


class CapturedStep:
    def __init__(self, step, model, x_shape, warmup: int = 3):
        """``step(x, y) -> (loss, correct)`` on the model's backend; ``x_shape`` the batch's (fixed) shape."""
        b = model.backend
        torch = b.torch
        self.step, self.graph = step, None
        self.x = torch.zeros(x_shape, dtype=b.dtype, device=b.device)
        self.y = torch.zeros(x_shape[:1], dtype=torch.int64, device=b.device)
        cuda = b.device.type == "cuda"
        model.train()
        state = model.state_dict()
        side = torch.cuda.Stream(b.device) if cuda else None
        if cuda:
            side.wait_stream(torch.cuda.current_stream(b.device))
            with torch.cuda.stream(side):  # a recording needs the libraries' workspaces made first
                for _ in range(warmup):
                    step(self.x, self.y)
            torch.cuda.current_stream(b.device).wait_stream(side)
        else:  # the same warm-up, so that the tests on the CPU see it undone
            for _ in range(warmup):
                step(self.x, self.y)
        model.load_state_dict(state)  # in place: the warm-up steps are undone, the arrays stay where they are
        if not cuda:
            return
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = step(self.x, self.y)

    def __call__(self, x, y):
        self.x.copy_(x)
        self.y.copy_(y)
        if self.graph is None:
            return self.step(self.x, self.y)
        self.graph.replay()
        return self.out
