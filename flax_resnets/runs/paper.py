"""The paper's own runs: each Table 1 cell's per-epoch log as its public notebooks printed it
(``paper_runs.json``). 14 of Table 1's numbers are their test accuracies, rounded; CIFAR-100 VGG19's
47.9 is its validation accuracy after epoch 20 (``TABLE1_IS_VALIDATION``), its test accuracy 58.70.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

PAPER_RUNS = Path(__file__).with_name("paper_runs.json")
# The cell whose Table 1 number is a validation accuracy, and the epoch it was read after.
TABLE1_IS_VALIDATION = {"cifar100_vgg19": 20}


@functools.cache
def paper_runs() -> dict[str, Any]:
    """Every logged run by cell name (``<dataset>_<model>``, and the notebooks' extra CNN)."""
    return json.loads(PAPER_RUNS.read_text())["runs"]


def paper_curves(cell: str) -> dict[str, list[float]]:
    """The logged run of ``cell`` epoch by epoch, in this project's units (accuracies as fractions):
    epoch, train_loss, train_accuracy, val_loss, val_accuracy, learning_rate."""
    epochs = paper_runs()[cell]["epochs"]
    return {
        "epoch": [e["epoch"] for e in epochs],
        "train_loss": [e["train_loss"] for e in epochs],
        "train_accuracy": [e["train_acc"] / 100 for e in epochs],
        "val_loss": [e["val_loss"] for e in epochs],
        "val_accuracy": [e["val_acc"] / 100 for e in epochs],
        "learning_rate": [e["lr_during_epoch"] for e in epochs],
    }
