"""PNG plots of training curves (matplotlib, no display needed)."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, path):
    """Written whole or not at all (a stop while plotting keeps the previous plot)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fig.tight_layout()
    fig.savefig(tmp, dpi=120, format=path.suffix.lstrip("."))
    plt.close(fig)
    os.replace(tmp, path)


def loss_curve(epochs: list, path: Path, title: str):
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([e["epoch"] for e in epochs], [e["train_loss"] for e in epochs], marker="o")
    ax.set(xlabel="epoch", ylabel="training loss (cross-entropy)", title=title)
    ax.grid(alpha=0.3)
    _save(fig, path)


def accuracy_curves(epochs: list, path: Path, title: str):
    fig, ax = plt.subplots(figsize=(6, 4))
    x = [e["epoch"] for e in epochs]
    ax.plot(x, [e["train_accuracy"] for e in epochs], marker="o", label="training (mean over batches)")
    ax.plot(x, [e["val_accuracy"] for e in epochs], marker="s", label="validation")
    ax.set(xlabel="epoch", ylabel="accuracy", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def compare(runs: dict, key: str, path: Path, title: str):
    """One curve per labelled run, ``key`` of each epoch record."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, epochs in runs.items():
        ax.plot([e["epoch"] for e in epochs], [e[key] for e in epochs], marker=".",
                linestyle="--" if "no BN" in label else "-", label=label)
    ax.set(xlabel="epoch", ylabel=key.replace("_", " "), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def step_curve(evaluations: list, key: str, path: Path, title: str, ylabel: str):
    """``key`` of each evaluation record against its training step."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([e["step"] for e in evaluations], [e[key] for e in evaluations], marker="o")
    ax.set(xlabel="step", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    _save(fig, path)
