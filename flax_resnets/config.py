"""A run's config: the paper's recipe (every field's default, in one place) and the checks made
on a config before any data is read or anything compiled.

Each problem is reported as one sentence naming the field, the value and the fix.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import ml_collections
from ml_collections import config_dict as config_dicts

from flax_resnets.cli import RETIRED_FIELDS
from flax_resnets.data.sources import IMAGE_CHANNELS, NORMALIZATIONS, require_dataset
from flax_resnets.errors import InputError
from flax_resnets.files import read_json_object
from flax_resnets.models import require_init, require_models

# Fields that may change between the runs of one workdir without changing the results.
MAY_CHANGE_ON_RESUME = (
    "data_dir",
    "download",
    "log_every_steps",
    "distributed",
    "steps_per_call",
    "eval_batch_size",
)
DTYPES = ("float32", "bfloat16")
# Seeds become 32-bit keys (JAX's, the device feed's int32 arrays): larger ones would wrap around
# onto smaller seeds' randomness.
SEED_LIMIT = 2**31
SCHEDULES = ("cosine", "cosine_epochs", "multistep", "onecycle")


# Every field of a config and what it means, in the order they are shown: the one source of the
# README's table of fields and of ``python -m flax_resnets config``.
FIELDS = {
    "model": "any name from the model table below",
    "dataset": "`fashion_mnist`, `cifar10`, `cifar100` (TFDS) or `image_folder`",
    "data_dir": "TFDS data directory, the image folder's root, or an exported `.npz`",
    "download": "let TFDS download a dataset that `data_dir` lacks",
    "validation_fraction": (
        'a random subset held out from the training split (0: none; "best" is then the latest)'
    ),
    "split_seed": "the permutation the validation subset is cut from",
    "train_images": "> 0: train on only the first N training images after the cut (quick checks)",
    "image_channels": (
        "`3`: greyscale images as 3 identical channels (the paper's Fashion-MNIST); `0`: the data's own"
    ),
    "augment": "pad-4 random crop and horizontal flip",
    "pad_after_normalization": "crops padded with 0 after normalising (mid-grey), not with black pixels",
    "augment_validation": (
        "validation images cropped and flipped afresh every epoch, as the paper's split of its augmented set"
    ),
    "normalization": (
        "(x - 0.5) / 0.5 per channel (`plus_minus_one`, the paper's), the training images' mean and std "
        "(`data`), or kuangliu/pytorch-cifar's constants (`pytorch_cifar`)"
    ),
    "init": (
        "each model as the paper's code (VGG: He fan-out normal convolutions; the rest: PyTorch's defaults), "
        "`pytorch` or `he` everywhere"
    ),
    "batch_size": "global batch, over all devices and hosts",
    "num_epochs": "the schedule spans all of them",
    "learning_rate": "initial (cosine) or peak (onecycle) rate",
    "momentum": "SGD momentum (PyTorch convention)",
    "weight_decay": "L2 term added to the gradient",
    "seed": "initialization, shuffling, augmentation and dropout",
    "num_seeds": "members trained side by side as one program, seeds `seed` .. `seed + num_seeds - 1`",
    "dtype": "compute dtype, `float32` or `bfloat16` (parameters stay float32)",
    "steps_per_call": "training steps per compiled call (a `lax.scan` on accelerators; same results)",
    "schedule": (
        "`cosine_epochs` (PyTorch's `CosineAnnealingLR` stepped once per epoch, the paper's), `cosine` (the "
        "same curve updated every step), `multistep` (divided by 10 at 50% and 75% of the run, He et al.) or "
        "`onecycle` (linear warm-up, linear to 0)"
    ),
    "cosine_period_epochs": "the cosine's `T_max` in epochs (0: the whole run, to 0 at its end)",
    "warmup_epochs": "`onecycle`'s rise from 0",
    "nesterov": "Nesterov momentum",
    "label_smoothing": "targets smoothed towards uniform",
    "weight_decay_kernels_only": "no weight decay on biases and BatchNorm",
    "eval_flip": "average each test image's logits with its mirror image's",
    "eval_batch_size": "evaluation batch (exact: the last batch is padded and masked)",
    "checkpoint_every_steps": "checkpoint interval besides every epoch end (0: epoch ends only)",
    "keep_checkpoints": "latest checkpoints kept, besides the best by validation accuracy",
    "log_every_steps": "progress-bar refresh of the running loss and accuracy",
    "paper_cell": (
        "the Table 1 cell whose recipe this is (set by its config): its logged curves are drawn in "
        "`curves.png`"
    ),
    "distributed": "call `jax.distributed.initialize()` (also when `JAX_COORDINATOR_ADDRESS` is set)",
}


def default_config(dataset: str = "cifar10", model: str = "resnet18") -> ml_collections.ConfigDict:
    """The paper's recipe for ``model`` on ``dataset``, as its code ran it: every config starts here
    (``FIELDS`` says what each field means).

    SGD with momentum 0.9 and learning rate 0.001, PyTorch's ``CosineAnnealingLR(T_max=50)`` stepped
    once per epoch (20 epochs end at 6.84e-4), L2 weight decay 0.001 added to every parameter's
    gradient (PyTorch's ``weight_decay``), batch size 16, 20 epochs; pixels to [-1, 1] by
    (x - 0.5) / 0.5; a seeded random 20% of the training images held out for validation and
    cropped and flipped like the training images, afresh every epoch; each model initialised as
    the paper's code did; the best epoch by validation accuracy (the earliest of ties) tested.
    Fashion-MNIST as 3 identical channels, padded for its crops after normalising (mid-grey),
    CIFAR padded before (black). Table 1's cells differ only as ``TABLE1_CELLS`` says.
    """
    config = ml_collections.ConfigDict()
    # What to train on, and how the data is read.
    config.model = model
    config.dataset = dataset
    config.data_dir = config_dicts.placeholder(str)
    config.download = True
    config.validation_fraction = 0.2
    config.train_images = 0
    config.split_seed = 0
    config.image_channels = 3 if dataset == "fashion_mnist" else 0
    config.augment = True
    config.pad_after_normalization = dataset == "fashion_mnist"
    config.augment_validation = True
    config.normalization = "plus_minus_one"
    # The model, the optimizer and the schedule.
    config.init = "paper"
    config.batch_size = 16
    config.num_epochs = 20
    config.learning_rate = 0.001
    config.momentum = 0.9
    config.weight_decay = 0.001
    config.seed = 0
    config.num_seeds = 1  # flax_resnets.runtime.members
    config.dtype = "float32"
    config.steps_per_call = 1
    config.schedule = "cosine_epochs"
    config.cosine_period_epochs = 50
    # Beyond the paper (configs/cifar10_fast.py): off in its recipe.
    config.warmup_epochs = 0.0
    config.nesterov = False
    config.label_smoothing = 0.0
    config.weight_decay_kernels_only = False
    config.eval_flip = False
    # Evaluation, checkpoints, logs.
    config.eval_batch_size = 256
    config.checkpoint_every_steps = 1000
    config.keep_checkpoints = 3
    config.log_every_steps = 50
    config.paper_cell = ""
    # Multi-host.
    config.distributed = False
    return config


def shown_value(value: Any) -> str:
    """A field's value as the README and ``python -m flax_resnets config`` show it."""
    return "none" if value is None else f"`{json.dumps(value) if value == '' else value}`"


def fields_table() -> list[str]:
    """The README's table of fields: each field, its default (the dataset's where it depends on it)
    and its meaning."""
    cifar, fashion = default_config(), default_config(dataset="fashion_mnist")
    rows = ["| field | default | meaning |", "| --- | --- | --- |"]
    for field, meaning in FIELDS.items():
        default = shown_value(cifar[field])
        if field != "dataset" and fashion[field] != cifar[field]:
            default = f"{shown_value(fashion[field])} for Fashion-MNIST, else {default}"
        rows.append(f"| `{field}` | {default} | {meaning} |")
    return rows


# How each Table 1 cell, as the paper's notebooks ran it, differs from ``default_config`` of its
# dataset and model (docs/recipe.md: no weight decay for three CIFAR-100 cells; its VGG19 is the
# BatchNorm variant, trained for 40 epochs).
TABLE1_DATASETS = ("fashion_mnist", "cifar10", "cifar100")
TABLE1_MODELS = ("alexnet", "vgg19", "resnet18", "resnet34", "resnet50")
TABLE1_CELLS: dict[str, dict[str, Any]] = {
    f"{dataset}_{model}": {} for dataset in TABLE1_DATASETS for model in TABLE1_MODELS
}
TABLE1_CELLS["cifar100_alexnet"] = {"weight_decay": 0.0}
TABLE1_CELLS["cifar100_vgg19"] = {"model": "vgg19_bn", "weight_decay": 0.0, "num_epochs": 40}
TABLE1_CELLS["cifar100_resnet18"] = {"weight_decay": 0.0}


def cell_config(cell: str) -> ml_collections.ConfigDict:
    """The recipe of Table 1 cell ``<dataset>_<model>`` as the paper's code ran it."""
    if cell not in TABLE1_CELLS:
        raise InputError(
            f"no Table 1 cell {cell!r}: name cells <dataset>_<model>, e.g. cifar10_resnet18, with a dataset "
            f"of {', '.join(TABLE1_DATASETS)} and a model of {', '.join(TABLE1_MODELS)}."
        )
    dataset, _, model = cell.rpartition("_")
    config = default_config(dataset=dataset, model=model)
    config.update(paper_cell=cell, **TABLE1_CELLS[cell])
    return config


def get_config(cell: str) -> ml_collections.ConfigDict:
    """``--config=<this file>:<cell>``: what ``configs/<cell>.py`` gives, for an installed package
    without the configs folder."""
    return cell_config(cell)


def with_overrides(config: ml_collections.ConfigDict, flags: list[str]) -> ml_collections.ConfigDict:
    """``config`` with the ``--config.FIELD=VALUE`` flags applied, as the trainer will read them."""
    config = ml_collections.ConfigDict(config.to_dict())
    for flag in flags:
        field, _, text = flag.removeprefix("--config.").partition("=")
        if field not in config:
            raise InputError(
                f"{flag}: the config has no field {field!r}; `python -m flax_resnets config` lists them."
            )
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
    """Each field holds a value of its default's type (an int where a float is expected is fine):
    a hand-edited config.json gets one line, not a TypeError deep in training. Ours, not
    ml_collections': a workdir's config.json is read back as a plain dict, and ConfigDict's own
    check would let True through as an int and None as anything."""
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


def validate_config(config: ml_collections.ConfigDict) -> None:
    for field, why in RETIRED_FIELDS.items():
        if field in config:
            raise InputError(f"config.{field} is no longer needed: {why}; remove it from the config.")
    check_types(config)
    for field, value in config.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"config.{field} must be a finite number, got {value}.")
    for field in ("seed", "split_seed", "train_images", "cosine_period_epochs"):
        if config[field] < 0:
            raise InputError(f"config.{field} must be 0 or more, got {config[field]}.")
    if config.seed + max(config.num_seeds, 1) - 1 >= SEED_LIMIT or config.split_seed >= SEED_LIMIT:
        raise InputError(
            f"config.seed (+ num_seeds - 1) and config.split_seed must be below 2**31 = {SEED_LIMIT}, "
            f"got seed={config.seed}, num_seeds={config.num_seeds}, split_seed={config.split_seed}."
        )
    require_models([config.model])
    require_dataset(config.dataset, config.validation_fraction)
    positive = (
        "learning_rate",
        "num_epochs",
        "batch_size",
        "eval_batch_size",
        "keep_checkpoints",
        "steps_per_call",
        "num_seeds",
    )
    for field in positive:
        if not config[field] > 0:
            raise InputError(f"config.{field} must be positive, got {config[field]}.")
    if not 0 <= config.momentum < 1:
        raise InputError(f"config.momentum must be in [0, 1), got {config.momentum}.")
    if config.weight_decay < 0:
        raise InputError(f"config.weight_decay must not be negative, got {config.weight_decay}.")
    if config.schedule not in SCHEDULES:
        raise InputError(f"config.schedule must be one of {', '.join(SCHEDULES)}, got {config.schedule!r}.")
    if config.schedule == "onecycle" and not 0 <= config.warmup_epochs < config.num_epochs:
        raise InputError(
            f"config.warmup_epochs must be at least 0 and below num_epochs={config.num_epochs}, "
            f"got {config.warmup_epochs}."
        )
    if not 0 <= config.label_smoothing < 1:
        raise InputError(f"config.label_smoothing must be in [0, 1), got {config.label_smoothing}.")
    require_init(config.init)
    if config.dtype not in DTYPES:
        raise InputError(f"config.dtype must be one of {', '.join(DTYPES)}, got {config.dtype!r}.")
    if config.normalization not in NORMALIZATIONS:
        raise InputError(
            f"config.normalization must be one of {', '.join(NORMALIZATIONS)}, got {config.normalization!r}."
        )
    if config.image_channels not in IMAGE_CHANNELS:
        raise InputError(
            f"config.image_channels must be 0 (the data's own) or 3 (greyscale as 3 channels), "
            f"got {config.image_channels}."
        )
    if config.paper_cell and config.paper_cell not in TABLE1_CELLS:
        raise InputError(
            f"config.paper_cell must be a Table 1 cell such as cifar10_resnet18 (or empty), "
            f"got {config.paper_cell!r}."
        )
    if config.checkpoint_every_steps < 0:
        raise InputError(
            "config.checkpoint_every_steps must be >= 0 (0: at epoch ends only), "
            f"got {config.checkpoint_every_steps}."
        )


def config_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
    return json.loads(config.to_json())


def recorded_config(workdir: Path) -> dict[str, Any] | None:
    """The config a workdir's run was started with, if any (a field it lacks: its default)."""
    path = Path(workdir) / "config.json"
    if not path.exists():
        return None
    recorded = read_json_object(path, "restore it from a backup, or use a new --workdir")
    for field in RETIRED_FIELDS:
        recorded.pop(field, None)
    return {**config_dict(default_config()), **recorded}


def check_continuable(workdir: Path) -> None:
    """Refuse to go on training a run that an earlier version fed through tf.data: its crops and
    flips were TensorFlow's, which the compiled step does not draw, so it would not continue as
    the run it is (evaluating it is fine)."""
    path = Path(workdir) / "config.json"
    if not path.exists() or not (Path(workdir) / "checkpoints").is_dir():
        return
    if (
        read_json_object(path, "restore it from a backup, or use a new --workdir").get("input_pipeline")
        == "tfdata"
    ):
        raise InputError(
            f"{workdir} holds a run fed by tf.data (an earlier version's input_pipeline), whose crops "
            "this version does not draw, so it cannot go on as the same run: evaluate it (--mode=eval), "
            "or train in a new --workdir."
        )


def check_workdir(workdir: Path) -> None:
    """Refuse a workdir that is a file, or that cannot be created or written, before any work."""
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise InputError(f"--workdir={workdir} is a file, not a folder: pass a folder for the run.")
    existing = next(p for p in (workdir, *workdir.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise InputError(f"--workdir={workdir} is inside {existing}, a file: pass a folder for the run.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--workdir={workdir}: {existing} is not writable; pass a folder you can write to.")


DATA_RECORD = "data.json"  # the fingerprint of the data a workdir's run read


def check_same_data(workdir: Path, dataset: Any, fingerprint: dict[str, Any] | None = None) -> None:
    """Refuse to continue or evaluate a run on data other than what it trained on: by the run's
    data.json (``fingerprint``: ``dataset.fingerprint()``, given where it is already made), or
    without one by its run.json's record of the data (classes, channels, split sizes, pixel
    statistics); a run with checkpoints and neither file is refused, its data unknowable."""
    path = Path(workdir) / DATA_RECORD
    if path.exists():
        recorded = read_json_object(path, "restore it, or use a new --workdir")
        differences = data_differences(recorded, fingerprint or dataset.fingerprint())
    elif (Path(workdir) / "run.json").exists():
        run = read_json_object(Path(workdir) / "run.json", "restore it, or use a new --workdir")
        differences = data_differences(summary_fields(run.get("data"), dataset), dataset.summary())
    elif (Path(workdir) / "checkpoints").is_dir():
        raise InputError(
            f"{workdir} holds checkpoints but neither data.json nor run.json, so the data it trained on "
            "cannot be checked: restore data.json from a backup, or use a new --workdir."
        )
    else:
        return
    if differences:
        raise InputError(
            f"{workdir} holds a run on other data ({'; '.join(differences)}): point data_dir at the data "
            "it was started with, or use a new --workdir."
        )


def summary_fields(recorded: Any, dataset: Any) -> dict[str, Any]:
    """The fields of a run.json data record that ``dataset.summary()`` has, the pixel statistics
    rounded as the record's were, so that the same data compares equal."""
    if not isinstance(recorded, dict):
        raise InputError("run.json has no record of the data: restore it, or use a new --workdir.")
    summary = dataset.summary()
    fields = {key: recorded.get(key) for key in summary}
    for key in ("mean", "std"):
        if isinstance(fields[key], list) and len(fields[key]) == len(summary[key]):
            close = all(abs(a - b) < 1e-6 for a, b in zip(fields[key], summary[key], strict=True))
            fields[key] = summary[key] if close else fields[key]
    return fields


def data_differences(there: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """How the data recorded for a run differs from the data read now, field by field."""
    differences = []
    for key in sorted(set(there) | set(now)):
        before, after = there.get(key), now.get(key)
        if before == after:
            continue
        if key == "sha256":
            differences.append("the images or labels differ")
        elif key == "class_names":
            differences.append(f"{len(before or [])} classes there, {len(after or [])} now")
        else:
            differences.append(f"{key} {before} there, {after} now")
    return differences


def check_same_run(
    config: ml_collections.ConfigDict,
    workdir: Path,
    fix: str = "use a new --workdir, or the config it was started with",
) -> None:
    """Refuse to mix two configs' checkpoints and metrics in one workdir (``fix``: what to do)."""
    recorded = recorded_config(workdir)
    if recorded is None:
        if (Path(workdir) / "checkpoints").is_dir():
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
        raise InputError(f"{workdir} holds a run of a different config ({changes}): {fix}.")
