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

from flax_resnets.data.pipelines import PIPELINES
from flax_resnets.data.sources import DATASET_NAMES, NORMALIZATIONS
from flax_resnets.errors import InputError
from flax_resnets.models import require_init, require_models

# Fields that may change between the runs of one workdir without changing the results. Not
# input_pipeline: the two pipelines draw different crops and flips, so a run resumed with the
# other one would no longer be the run it continues.
MAY_CHANGE_ON_RESUME = (
    "data_dir",
    "download",
    "log_every_steps",
    "distributed",
    "steps_per_call",
    "eval_batch_size",
)
# What runs recorded before a field existed did, where its default is not that: He et al.'s
# initialisation was the only one before config.init.
FIELDS_BEFORE_THEY_EXISTED = {"init": "he"}
DTYPES = ("float32", "bfloat16")
SCHEDULES = ("cosine", "cosine_epochs", "multistep", "onecycle")


def default_config(dataset: str = "cifar10", model: str = "resnet18") -> ml_collections.ConfigDict:
    """The paper's recipe (section 3.3) for ``model`` on ``dataset``: every config starts here.

    SGD with momentum 0.9, learning rate 0.001 annealed to 0 by a cosine over the whole run, L2
    weight decay 0.001 added to every parameter's gradient (PyTorch's ``weight_decay``), batch
    size 16, 20 epochs, 20% of the training images held out for validation, PyTorch's default
    initialisation, seed 0.
    """
    config = ml_collections.ConfigDict()

    # What to train on, and how the data is read.
    config.model = model
    config.dataset = dataset  # fashion_mnist, cifar10, cifar100 (TFDS) or image_folder
    config.data_dir = config_dicts.placeholder(str)  # TFDS data_dir, the image folder's root, or a .npz
    config.download = True  # let TFDS download a dataset missing from data_dir
    config.validation_fraction = 0.2
    config.train_images = 0  # > 0: only the first N training images after the split (quick checks)
    config.split_seed = 0  # shuffles an image folder before the validation cut
    config.augment = True  # pad-4 random crop and horizontal flip
    # data: per channel by the training images' mean and std; pytorch_cifar: kuangliu's constants.
    config.normalization = "data"
    # tfdata: batches made by tf.data on the host; device: the dataset in accelerator memory,
    # batches made inside the compiled step (no TensorFlow needed with an exported .npz file).
    config.input_pipeline = "tfdata"

    # The model, the optimizer and the schedule.
    config.init = "pytorch"  # pytorch: the layers' PyTorch defaults, as the paper's code; he: He et al.
    config.batch_size = 16  # global, over all devices and hosts
    config.num_epochs = 20
    config.learning_rate = 0.001
    config.momentum = 0.9
    config.weight_decay = 0.001
    config.seed = 0  # parameters, shuffling and augmentation
    # Members trained side by side as one compiled program, seeds seed .. seed + num_seeds - 1,
    # each exactly the one-seed run of its seed (flax_resnets.runtime.members).
    config.num_seeds = 1
    config.dtype = "float32"  # compute dtype: float32 or bfloat16 (parameters stay float32)
    config.steps_per_call = 1  # training steps fused into one compiled call (same results)

    # Beyond the paper (configs/cifar10_fast.py): off in its recipe.
    # cosine: the paper's, updated every step; cosine_epochs: the same curve updated once per epoch
    # (CosineAnnealingLR stepped per epoch); multistep: divided by 10 at 50% and 75% of the run (He
    # et al.); onecycle: linear warm-up, then linear to 0.
    config.schedule = "cosine"
    config.warmup_epochs = 0.0  # onecycle's rise from 0 to learning_rate
    config.nesterov = False
    config.label_smoothing = 0.0
    config.weight_decay_kernels_only = False  # True: no weight decay on biases and BatchNorm
    config.eval_flip = False  # average the logits of each test image and its mirror image

    # Evaluation, checkpoints, logs.
    config.eval_batch_size = 256
    config.checkpoint_every_steps = 1000  # and at the end of every epoch
    config.keep_checkpoints = 3  # latest ones kept, besides the best by validation accuracy
    config.log_every_steps = 50  # progress-bar refresh of the running loss and accuracy

    # Multi-host: call jax.distributed.initialize() (also done when JAX_COORDINATOR_ADDRESS is set).
    config.distributed = False
    return config


def get_config(cell: str) -> ml_collections.ConfigDict:
    """The paper's recipe for a Table 1 cell named ``<dataset>_<model>`` (``--config=<this file>:cell``):
    what ``configs/<cell>.py`` gives, for an installed package without the configs folder."""
    dataset, _, model = cell.rpartition("_")
    return default_config(dataset=dataset, model=model)


def check_types(config: ml_collections.ConfigDict) -> None:
    """Each field holds a value of its default's type (an int where a float is expected is fine):
    a hand-edited config.json gets one line, not a TypeError deep in training."""
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
    check_types(config)
    for field, value in config.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"config.{field} must be a finite number, got {value}.")
    for field in ("seed", "split_seed", "train_images"):
        if config[field] < 0:
            raise InputError(f"config.{field} must be 0 or more, got {config[field]}.")
    require_models([config.model])
    if config.dataset not in DATASET_NAMES:
        raise InputError(f"Unknown dataset {config.dataset!r}; choose one of: {', '.join(DATASET_NAMES)}.")
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
    if not 0 <= config.validation_fraction < 1:
        raise InputError(f"config.validation_fraction must be in [0, 1), got {config.validation_fraction}.")
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
    if config.input_pipeline not in PIPELINES:
        raise InputError(
            f"config.input_pipeline must be one of {', '.join(PIPELINES)}, got {config.input_pipeline!r}."
        )
    if config.checkpoint_every_steps < 0:
        raise InputError(
            "config.checkpoint_every_steps must be >= 0 (0: at epoch ends only), "
            f"got {config.checkpoint_every_steps}."
        )


def config_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
    return json.loads(config.to_json())


def recorded_config(workdir: Path) -> dict[str, Any] | None:
    """The config a workdir's run was started with, if any. Fields added since that run took the
    value it ran with: their default, or the old behaviour in ``FIELDS_BEFORE_THEY_EXISTED``."""
    path = Path(workdir) / "config.json"
    if not path.exists():
        return None
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(
            f"{path} cannot be read ({error}): restore it from a backup, or use a new --workdir."
        ) from error
    return {**config_dict(default_config()), **FIELDS_BEFORE_THEY_EXISTED, **recorded}


def check_workdir(workdir: Path) -> None:
    """Refuse a workdir that is a file, or that cannot be created or written, before any work."""
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise InputError(f"--workdir={workdir} is a file, not a folder: pass a folder for the run.")
    existing = next(p for p in (workdir, *workdir.absolute().parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--workdir={workdir}: {existing} is not writable; pass a folder you can write to.")


DATA_RECORD = "data.json"  # the fingerprint of the data a workdir's run read


def check_same_data(workdir: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse to continue or evaluate a run on data other than what it trained on."""
    path = Path(workdir) / DATA_RECORD
    if not path.exists():
        return
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{path} cannot be read ({error}): restore it, or use a new --workdir.") from error
    if recorded == fingerprint:
        return
    differences = []
    for key in sorted(set(recorded) | set(fingerprint)):
        there, now = recorded.get(key), fingerprint.get(key)
        if there == now:
            continue
        if key == "sha256":
            differences.append("the images or labels differ")
        elif key == "class_names":
            differences.append(f"{len(there or [])} classes there, {len(now or [])} now")
        else:
            differences.append(f"{key} {there} there, {now} now")
    raise InputError(
        f"{workdir} holds a run on other data ({'; '.join(differences)}): point data_dir at the data "
        "it was started with, or use a new --workdir."
    )


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
