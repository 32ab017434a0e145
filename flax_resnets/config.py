"""Checks on a run's config, made before any data is read or anything compiled.

Each problem is reported as one sentence naming the field, the value and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ml_collections

from flax_resnets.data import DATASET_NAMES
from flax_resnets.errors import InputError
from flax_resnets.models import MODELS

# Fields that may change between the runs of one workdir without changing the results.
MAY_CHANGE_ON_RESUME = (
    "data_dir",
    "download",
    "log_every_steps",
    "distributed",
    "steps_per_call",
    "input_pipeline",
    "eval_batch_size",
)
DTYPES = ("float32", "bfloat16")
PIPELINE_NAMES = ("tfdata", "device")


def validate_config(config: ml_collections.ConfigDict) -> None:
    if config.model not in MODELS:
        raise InputError(f"Unknown model {config.model!r}; choose one of: {', '.join(MODELS)}.")
    if config.dataset not in DATASET_NAMES:
        raise InputError(f"Unknown dataset {config.dataset!r}; choose one of: {', '.join(DATASET_NAMES)}.")
    positive = (
        "learning_rate",
        "num_epochs",
        "batch_size",
        "eval_batch_size",
        "keep_checkpoints",
        "steps_per_call",
    )
    for field in positive:
        if not config[field] > 0:
            raise InputError(f"config.{field} must be positive, got {config[field]}.")
    if not 0 <= config.momentum < 1:
        raise InputError(f"config.momentum must be in [0, 1), got {config.momentum}.")
    if config.weight_decay < 0:
        raise InputError(f"config.weight_decay must not be negative, got {config.weight_decay}.")
    if not 0 <= config.validation_fraction < 1:
        raise InputError(f"config.validation_fraction must be in [0, 1), got {config.validation_fraction}.")
    if config.dtype not in DTYPES:
        raise InputError(f"config.dtype must be one of {', '.join(DTYPES)}, got {config.dtype!r}.")
    if config.input_pipeline not in PIPELINE_NAMES:
        raise InputError(
            f"config.input_pipeline must be one of {', '.join(PIPELINE_NAMES)}, "
            f"got {config.input_pipeline!r}."
        )
    if config.checkpoint_every_steps < 0:
        raise InputError(
            "config.checkpoint_every_steps must be >= 0 (0: at epoch ends only), "
            f"got {config.checkpoint_every_steps}."
        )


def config_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
    return json.loads(config.to_json())


def recorded_config(workdir: Path) -> dict[str, Any] | None:
    """The config a workdir's run was started with, if any."""
    path = Path(workdir) / "config.json"
    return json.loads(path.read_text()) if path.exists() else None


def check_same_run(config: ml_collections.ConfigDict, workdir: Path) -> None:
    """Refuse to mix two configs' checkpoints and metrics in one workdir."""
    recorded = recorded_config(workdir)
    if recorded is None:
        if (Path(workdir) / "checkpoints").exists():
            raise InputError(
                f"{workdir} holds checkpoints but no config.json, so its run cannot be checked: "
                "use a new --workdir."
            )
        return
    current = config_dict(config)
    differing = sorted(
        key
        for key in set(recorded) | set(current)
        if key not in MAY_CHANGE_ON_RESUME and recorded.get(key) != current.get(key)
    )
    if differing:
        changes = ", ".join(f"{k}={recorded.get(k)!r} there, {current.get(k)!r} now" for k in differing)
        raise InputError(
            f"{workdir} holds a run of a different config ({changes}): use a new --workdir, "
            "or the config it was started with."
        )
