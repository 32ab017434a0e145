"""A run's config: the paper's recipe (every field's default, in one place) and Table 1's cells.

Config files import this module alone: it reads no data and builds no model. The checks on a
config are ``flax_resnets.checks``'; those on a workdir, ``flax_resnets.runs.workdir``'s.
"""

from __future__ import annotations

import json
from typing import Any

import ml_collections
from ml_collections import config_dict as config_dicts

from flax_resnets.errors import InputError

DTYPES = ("float32", "bfloat16")
# Fields that earlier versions had, and why they are gone: a config or flag that sets one is refused
# saying so; a workdir's config.json that holds one is read without it.
RETIRED_FIELDS = {
    "input_pipeline": "every run keeps its data on the devices and makes its batches in the compiled step"
}
# Seeds become 32-bit keys (JAX's, the device feed's int32 arrays): larger ones would wrap around
# onto smaller seeds' randomness.
SEED_LIMIT = 2**31
SCHEDULES = ("cosine", "cosine_epochs", "multistep", "onecycle")


# Every field of a config and what it means, in the order they are shown: the one source of the
# README's table of fields and of ``python -m flax_resnets config``.
FIELDS = {
    "model": "a model of the zoo (`python -m flax_resnets models` lists them)",
    "dataset": "`fashion_mnist`, `cifar10`, `cifar100` (TFDS) or `image_folder`",
    "data_dir": "TFDS data directory, the image folder's root, or an exported `.npz`",
    "download": "let TFDS download a dataset that `data_dir` lacks",
    "validation_fraction": 'a random subset of the training split held out (0: none; "best" is the latest)',
    "split_seed": "the permutation the validation subset is cut from",
    "train_images": "> 0: a quick check: at most N images in each split (training, validation, test)",
    "image_channels": "`3`: grey images as 3 identical channels (the paper's Fashion-MNIST); `0`: as is",
    "augment": "pad-4 random crop and horizontal flip",
    "pad_after_normalization": "crops padded with 0 after normalising (mid-grey), not with black pixels",
    "augment_validation": "validation images cropped and flipped afresh every epoch (the paper's split)",
    "normalization": "`plus_minus_one` ((x - 0.5) / 0.5, the paper's), `data` (mean, std) or `pytorch_cifar`",
    "init": "`paper` (VGG: He fan-out convolutions; the rest: PyTorch's defaults), `pytorch` or `he`",
    "batch_size": "global batch, over all devices and hosts",
    "num_epochs": "the schedule spans all of them",
    "learning_rate": "initial (cosine) or peak (onecycle) rate",
    "momentum": "SGD momentum (PyTorch convention)",
    "weight_decay": "L2 term added to the gradient",
    "seed": "initialization, shuffling, augmentation and dropout",
    "num_seeds": "members trained side by side as one program, seeds `seed` .. `seed + num_seeds - 1`",
    "dtype": "compute dtype, `float32` or `bfloat16` (parameters stay float32)",
    "steps_per_call": "training steps per compiled call (a `lax.scan` on accelerators; same results)",
    "schedule": "`cosine_epochs` (the paper's, stepped per epoch), `cosine`, `multistep` or `onecycle`",
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
    "paper_cell": "the Table 1 cell whose recipe this is: its logged curves are drawn in `curves.png`",
    "distributed": "call `jax.distributed.initialize()` (also when `JAX_COORDINATOR_ADDRESS` is set)",
}


def default_config(dataset: str = "cifar10", model: str = "resnet18") -> ml_collections.ConfigDict:
    """The paper's recipe for ``model`` on ``dataset`` as its code ran it (docs/recipe.md): every config
    starts here; Table 1's cells differ only as ``TABLE1_CELLS`` says."""
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


def named_cells(names: str) -> list[str]:
    """The Table 1 cells ``names`` (comma-separated) names: cells, datasets (their five cells) or
    ``table1`` (all fifteen), each once, in Table 1's order within a name."""
    cells: list[str] = []
    for name in names.split(","):
        named = [cell for cell in TABLE1_CELLS if name in ("table1", cell, cell.rpartition("_")[0])]
        if not named:
            raise InputError(
                f"--cells: {name!r} names no Table 1 cell: give cells <dataset>_<model> (e.g. "
                f"cifar10_resnet18), datasets ({', '.join(TABLE1_DATASETS)}: their five cells) or "
                "table1 (all fifteen)."
            )
        cells += [cell for cell in named if cell not in cells]
    return cells


def get_config(cell: str) -> ml_collections.ConfigDict:
    """``--config=<this file>:<cell>``: what ``configs/<cell>.py`` gives, for an installed package
    without the configs folder."""
    return cell_config(cell)
