"""The checks made on a config before any data is read or anything compiled, and the overrides of
``--config.FIELD=VALUE`` flags checked the same way.

Each problem is reported as one sentence naming the field, the value and the fix.
"""

from __future__ import annotations

import argparse
import difflib
import math
from typing import Any

import ml_collections

from flax_resnets.config import DTYPES, RETIRED_FIELDS, SCHEDULES, SEED_LIMIT, TABLE1_CELLS, default_config
from flax_resnets.data.images import NORMALIZATIONS
from flax_resnets.data.sources import IMAGE_CHANNELS, require_dataset
from flax_resnets.errors import InputError
from flax_resnets.models import require_init, require_models


def seed_argument(text: str) -> int:
    """argparse type of a ``--seed`` flag: a seed a run could have (0 to 2**31 - 1)."""
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if not 0 <= seed < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to {SEED_LIMIT - 1}, got {text!r}")
    return seed


def with_overrides(config: ml_collections.ConfigDict, flags: list[str]) -> ml_collections.ConfigDict:
    """``config`` with the ``--config.FIELD=VALUE`` flags applied, each value of its field's type:
    the one way every command's overrides are read."""
    config = ml_collections.ConfigDict(config.to_dict())
    for flag in flags:
        field, _, text = flag.removeprefix("--config.").partition("=")
        if field in RETIRED_FIELDS:
            raise InputError(f"--config.{field} is no longer needed: {RETIRED_FIELDS[field]}; leave it out.")
        if field not in config:
            close = " or ".join(difflib.get_close_matches(field, list(config.keys()), n=3, cutoff=0.6))
            hint = f"did you mean {close}?" if close else "`python -m flax_resnets config` lists them."
            raise InputError(f"{flag}: the config has no field {field!r}; {hint}")
        kind = type(config[field]) if config[field] is not None else str
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                value: Any = text.lower() in ("true", "1")
            else:
                value = kind(text)
                if kind is float and not math.isfinite(value):
                    raise ValueError(text)
        except ValueError as error:
            raise InputError(
                f"{flag}: {text!r} is not a valid {kind.__name__} for config.{field}."
            ) from error
        config[field] = value
    return config


def check_types(config: ml_collections.ConfigDict) -> None:
    """Each field holds a value of its default's type (an int for a float is fine): a hand-edited
    config.json gets one line, not a TypeError deep in training (ConfigDict would let True pass as 1)."""
    for field, default in default_config().items():
        value = config.get(field)
        expected = str if default is None else type(default)
        if value is None and default is None:
            continue
        if isinstance(value, bool) != (expected is bool) or not isinstance(
            value, (int, float) if expected is float else expected
        ):
            kind = {bool: "True or False", int: "an integer", float: "a number"}.get(expected, "a string")
            raise InputError(
                f"config.{field} must be {kind}, got {value!r}: fix the config "
                "(or the workdir's config.json)."
            )


# Each field's condition and what it must be, checked in this order (its value named in the refusal).
POSITIVE, NOT_NEGATIVE = (lambda v: v > 0, "positive"), (lambda v: v >= 0, "0 or more")
RANGES = {
    **dict.fromkeys(("seed", "split_seed", "train_images", "cosine_period_epochs"), NOT_NEGATIVE),
    **dict.fromkeys(("learning_rate", "num_epochs", "batch_size", "eval_batch_size"), POSITIVE),
    **dict.fromkeys(("keep_checkpoints", "steps_per_call", "num_seeds"), POSITIVE),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "weight_decay": NOT_NEGATIVE,
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "checkpoint_every_steps": (lambda v: v >= 0, "0 or more (0: at epoch ends only)"),
}
CHOICES = {
    "schedule": SCHEDULES,
    "dtype": DTYPES,
    "normalization": NORMALIZATIONS,
    "image_channels": IMAGE_CHANNELS,  # 0: the data's own; 3: greyscale as 3 channels
}


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Refuse a config that cannot make a run, in one sentence naming the field, its value and the
    fix: before any data is read or anything compiled."""
    for field, why in RETIRED_FIELDS.items():
        if field in config:
            raise InputError(f"config.{field} is no longer needed: {why}; remove it from the config.")
    check_types(config)
    for field, value in config.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"config.{field} must be a finite number, got {value}.")
    for field, (holds, what) in RANGES.items():
        if not holds(config[field]):
            raise InputError(f"config.{field} must be {what}, got {config[field]}.")
    for field, choices in CHOICES.items():
        if config[field] not in choices:
            raise InputError(
                f"config.{field} must be one of {', '.join(map(str, choices))}, got {config[field]!r}."
            )
    if config.seed + config.num_seeds - 1 >= SEED_LIMIT or config.split_seed >= SEED_LIMIT:
        raise InputError(
            f"config.seed (+ num_seeds - 1) and config.split_seed must be below 2**31 = {SEED_LIMIT}, "
            f"got seed={config.seed}, num_seeds={config.num_seeds}, split_seed={config.split_seed}."
        )
    require_models([config.model])
    require_dataset(config.dataset, config.validation_fraction)
    require_init(config.init)
    if config.schedule == "onecycle" and not 0 <= config.warmup_epochs < config.num_epochs:
        raise InputError(
            f"config.warmup_epochs must be at least 0 and below num_epochs={config.num_epochs}, "
            f"got {config.warmup_epochs}."
        )
    if config.paper_cell and config.paper_cell not in TABLE1_CELLS:
        raise InputError(
            f"config.paper_cell must be a Table 1 cell such as cifar10_resnet18 (or empty), "
            f"got {config.paper_cell!r}."
        )
