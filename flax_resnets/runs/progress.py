"""What a training run shows while it trains: a progress bar per epoch with the running loss and
accuracy, and one line per finished epoch."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

from flax_resnets.progress import progress
from flax_resnets.runtime import members


def progress_bar(epoch: int, num_epochs: int, epoch_steps: int, first_step: int, *, enabled: bool) -> tqdm:
    description = f"epoch {epoch + 1}/{num_epochs}"
    return progress(epoch_steps, description, "step", initial=first_step, enabled=enabled, in_logs=True)


def progress_means(means: list[dict[str, float]]) -> dict[str, Any]:
    """The progress bar's figures: one member's loss and accuracy, or the members' mean +- std."""
    if len(means) == 1:
        return means[0]
    shown = {}
    for key in ("loss", "accuracy"):
        mean, std = members.mean_and_std([m[key] for m in means])
        shown[key] = f"{mean:.4f}+-{std:.4f}"
    return shown


def epoch_summary(record: dict) -> str:
    val = (
        f"val loss {record['val_loss']:.4f} acc {record['val_accuracy']:.2%}"
        if record["val_accuracy"] is not None
        else "no validation split"
    )
    members = len(record.get("seeds", []))
    averaged = f" (mean of {members} seeds)" if members > 1 else ""
    return (
        f"epoch {record['epoch']} step {record['step']}{averaged}: train loss {record['train_loss']:.4f} "
        f"acc {record['train_accuracy']:.2%}, {val}, lr {record['learning_rate']:.2e}, "
        f"{record['seconds']:.1f}s, {record['images_per_second']:.0f} images/s"
    )
