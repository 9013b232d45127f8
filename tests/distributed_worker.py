"""One process of the data-parallel test (tests/test_distributed.py), started by torchrun: a few steps of the
MLP on synthetic data inside DistributedDataParallel; every rank saves its network state."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.train import Config, trainer_for  # noqa: E402
from runtime.training import checkpoint, distributed  # noqa: E402
from tests.synthetic import synthetic  # noqa: E402


def main(out: str, steps: int, use_batch_norm: bool):
    with distributed.session() as dist:
        cfg = Config(hidden_dims=[16, 8], batch_size=32, lr=0.05, use_batch_norm=use_batch_norm, backend="torch",
                     device="cpu", dtype="float64", world_size=dist.world_size)
        trainer = trainer_for(cfg, synthetic(n_train=320, n_eval=8), dist)
        trainer.train(steps)
        checkpoint.save(Path(out) / f"rank{dist.rank}.npz", trainer.net.state_dict(), {"world_size": dist.world_size})


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "bn")
