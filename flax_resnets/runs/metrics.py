"""A run's epochs as it trains: ``metrics.jsonl``, TensorBoard summaries and the console's lines.

``metrics.jsonl`` is rewritten from the checkpointed history when a run resumes, so after a
crash it holds exactly one line per finished epoch, as if the run had never stopped.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

from flax_resnets.errors import InputError, warn
from flax_resnets.files import write_text
from flax_resnets.runtime import members

# An epoch record's fields that measure the machine: two runs of one config differ in these only.
TIMING_FIELDS = ("seconds", "images_per_second")
# What each member of a run measures per epoch (an epoch record's "seeds"); the record's own
# fields of these names are the members' means.
MEMBER_FIELDS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def member_records(
    seeds: list[int], train: list[dict[str, float]], validation: list[dict[str, Any] | None]
) -> list[dict]:
    """Each member's entry of an epoch record: its seed, training and validation loss and accuracy."""
    return [
        {
            "seed": seed,
            "train_loss": train_k["loss"],
            "train_accuracy": train_k["accuracy"],
            "val_loss": val_k["loss"] if val_k else None,
            "val_accuracy": val_k["accuracy"] if val_k else None,
        }
        for seed, train_k, val_k in zip(seeds, train, validation, strict=True)
    ]


def member_means(seeds: list[dict]) -> dict[str, float | None]:
    """The mean over the members of each of ``MEMBER_FIELDS`` (None where the run has none)."""
    means = {}
    for field in MEMBER_FIELDS:
        values = [member[field] for member in seeds if member[field] is not None]
        means[field] = sum(values) / len(values) if values else None
    return means


def best_steps(history: list[dict], num_seeds: int, saved: Collection[int] | None = None) -> list[int | None]:
    """Each member's best epoch's step by validation accuracy among ``saved`` (all when None), the
    earliest of ties (the paper's code kept a model on a strictly higher accuracy only); None without
    validation. The one decision of a run's best: what checkpoints keep, tests and best.json say."""
    best = []
    for member in range(num_seeds):
        scored = [  # a one-seed record of an earlier version holds its accuracy at the top level
            (accuracy, -record["step"])
            for record in history
            if (saved is None or record["step"] in saved)
            and (accuracy := record.get("seeds", [record])[member].get("val_accuracy")) is not None
        ]
        best.append(-max(scored)[1] if scored else None)
    return best


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
    count = len(record.get("seeds", []))
    averaged = f" (mean of {count} seeds)" if count > 1 else ""
    return (
        f"epoch {record['epoch']} step {record['step']}{averaged}: train loss {record['train_loss']:.4f} "
        f"acc {record['train_accuracy']:.2%}, {val}, lr {record['learning_rate']:.2e}, "
        f"{record['seconds']:.1f}s, {record['images_per_second']:.0f} images/s"
    )


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file; a last line cut off (an interrupted copy) is left out with a
    warning, a bad line before it refused, named."""
    lines = [line for line in Path(path).read_bytes().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line.decode("utf-8"))
        except ValueError as error:  # UnicodeDecodeError included
            if number < len(lines):
                message = f"{path}, line {number}, is not JSON ({error}): repair or remove that line."
                raise InputError(message) from error
            warn(f"the last line of {path} is cut off; it is left out")
            continue
        if not isinstance(record, dict):
            kind = type(record).__name__
            message = f"{path}, line {number}, holds a JSON {kind}, not a record: repair or remove that line."
            raise InputError(message)
        records.append(record)
    return records


class EpochReport:
    """Appends one record per epoch to ``metrics.jsonl`` and to TensorBoard (``tensorboard/``)."""

    def __init__(self, workdir: Path, history: list[dict]):
        torch_unloaded = "torch" not in sys.modules  # tensorboardX's writer imports torch if installed:
        sys.modules.setdefault("torch", None)  # a second of every run's start, for tensors never passed
        try:
            from tensorboardX import SummaryWriter  # here: only a training run needs it
        finally:
            if torch_unloaded:
                del sys.modules["torch"]
        self.metrics_path = Path(workdir) / "metrics.jsonl"
        write_text(self.metrics_path, "".join(json.dumps(record) + "\n" for record in history))
        self.writer = SummaryWriter(str(Path(workdir) / "tensorboard"))

    def write(self, record: dict) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for name, value in record.items():
            if name not in ("epoch", "step") and isinstance(value, (int, float)):
                self.writer.add_scalar(name, value, global_step=record["step"])
        if len(record.get("seeds", [])) > 1:  # each member beside the means
            for member in record["seeds"]:
                for name in MEMBER_FIELDS:
                    if member[name] is not None:
                        self.writer.add_scalar(f"seed{member['seed']}/{name}", member[name], record["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
