"""Training by steps with an evaluation every ``eval_freq`` steps: the loop the ConvNet and the recurrent
network's command lines share (the MLP's counts epochs)."""
from __future__ import annotations

import sys
import time
from dataclasses import asdict

from runtime.training import cli, plots


def train_by_steps(cfg, trainer, out, metrics: dict, *, what: str, desc: str, title: str, split: str = "test",
                   progress=True, dist=None, log=print) -> dict:
    """Train ``trainer`` to ``cfg.max_steps``; every ``cfg.eval_freq`` steps and at the last, evaluate the
    accuracy on ``split`` and write the checkpoint, ``metrics.json`` and the plots into ``out`` (``Outputs``).
    ``metrics`` holds the config and the evaluations so far (a resumed run's). Returns it."""
    from tqdm import tqdm

    from runtime.training.distributed import Single

    dist = dist or Single()
    key = f"{split}_accuracy"
    size = len(trainer.data[split][1])

    def draw(folder):
        if metrics["evaluations"]:
            plots.step_curve(metrics["evaluations"], "train_loss", folder / "loss.png", title, "training loss")
            plots.step_curve(metrics["evaluations"], key, folder / "accuracy.png", title, f"{split} accuracy")

    def save(state=True):
        if state:
            out.save(trainer.state_dict(), {**asdict(cfg), "step": trainer.step_count})
        out.metrics(metrics)
        out.plot(draw)

    start = time.perf_counter() - (metrics["evaluations"][-1]["seconds"] if metrics["evaluations"] else 0.0)
    quiet = not progress or dist.rank
    with trainer.interrupts_between_steps(), cli.stopping(save, out, trainer, what), \
            tqdm(total=cfg.max_steps, initial=trainer.step_count, desc=desc, disable=quiet, file=sys.stderr) as bar:
        while True:
            # An evaluation is due at every eval_freq-th step and the last; one a stop interrupted is made
            # first on resuming (the losses since the previous one are in the checkpoint).
            if trainer.window.steps and (trainer.step_count % cfg.eval_freq == 0 or trainer.step_count == cfg.max_steps):
                with tqdm(total=size, desc=split, leave=False, disable=quiet, file=sys.stderr) as ev:
                    accuracy = trainer.accuracy(split, progress=ev)
                record = {"step": trainer.step_count, "train_loss": trainer.report("the evaluation")["train_loss"],
                          key: accuracy, "seconds": time.perf_counter() - start}
                metrics["evaluations"].append(record)
                save()  # after every evaluation, before saying so: nothing is lost on a stop
                if not dist.rank:
                    bar.write(f"step {record['step']:5d}: loss {record['train_loss']:.4f}  {split} acc "
                              f"{record[key]:.4f}  ({record['seconds']:.0f} s)")
            if trainer.step_count >= cfg.max_steps:
                break
            trainer.train(min(cfg.eval_freq - trainer.step_count % cfg.eval_freq, cfg.max_steps - trainer.step_count),
                          bar)
    last = metrics["evaluations"][-1]
    log(f"{split} accuracy {last[key]:.4f} after {last['step']} steps ({last['seconds']:.0f} s)")
    return metrics


def resume_metrics(out, trainer, cfg) -> dict:
    """The metrics of the run in ``out``, its trainer brought to its checkpoint; records past the checkpoint
    (written after it by a run that then failed to save) are dropped, to be made again."""
    state, _, metrics = out.resume()
    trainer.load_state_dict(state)
    metrics["config"]["max_steps"] = cfg.max_steps
    metrics["evaluations"] = [e for e in metrics["evaluations"] if e["step"] <= trainer.step_count]
    return metrics
