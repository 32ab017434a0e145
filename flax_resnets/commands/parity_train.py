"""``python -m flax_resnets parity --train``: the project's trainer against an independent PyTorch
trainer (``twins.torch_trainer``, the paper's notebooks' way) on the same images, several seeds each.

    python -m flax_resnets parity --train --cell=cifar10_alexnet --config.data_dir=DIR

A cell's recipe (``--cell``) or the paper's for ``--model``, 1 epoch and 3 seeds unless
``--config.FIELD=VALUE`` (for fields both sides implement: ``FIELDS``) says otherwise. Exit status 1
when the mean test accuracies differ by more than 3 standard errors plus half a point.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import ml_collections

from flax_resnets.checks import validate_config, with_overrides
from flax_resnets.cli import command_parser, output_folder, parse_command
from flax_resnets.config import cell_config, default_config
from flax_resnets.errors import InputError
from flax_resnets.models import require_models
from flax_resnets.runs.summary import format_table
from flax_resnets.runs.workdir import read_run
from flax_resnets.runtime import members

TOLERANCE_POINTS = 0.005  # beyond 3 standard errors, half a point of accuracy
# Each run's numbers, and their columns in the printed tables.
METRICS = {
    "test_accuracy": "test acc",
    "best_val_accuracy": "best val acc",
    "final_train_loss": "final train loss",
    "final_train_accuracy": "final train acc",
}
# The recipe fields the PyTorch trainer follows, besides the model, epochs and training images.
RECIPE_FIELDS = (
    *("batch_size", "learning_rate", "momentum", "weight_decay", "validation_fraction", "split_seed"),
    *("schedule", "cosine_period_epochs", "normalization", "image_channels", "pad_after_normalization"),
    "augment_validation",
)
# What --config.FIELD=VALUE may change: what both sides implement, and what does not change results.
FIELDS = (*RECIPE_FIELDS, "model", "num_epochs", "train_images", "seed", "num_seeds", "data_dir")
FIELDS += ("eval_batch_size", "steps_per_call", "log_every_steps")
SCHEDULES = ("cosine_epochs", "cosine")  # the PyTorch trainer's


def recipe(args: Any, overrides: list[str]) -> ml_collections.ConfigDict:
    """The run config both sides train with: the cell's or the model's recipe on the image folder,
    1 epoch and 3 seeds, with the overrides given; a field only one side implements is refused."""
    config = cell_config(args.cell) if args.cell else default_config(model=args.model)
    config.update(
        dataset="image_folder", num_epochs=1, num_seeds=3, checkpoint_every_steps=0, log_every_steps=0
    )
    for flag in overrides:
        if flag.removeprefix("--config.").split("=")[0] not in FIELDS:
            raise InputError(
                f"{flag}: parity --train compares what both sides implement, and the PyTorch trainer "
                f"takes only {', '.join(FIELDS)}."
            )
    config = with_overrides(config, overrides)
    validate_config(config)
    if config.schedule not in SCHEDULES:
        raise InputError(
            f"config.schedule={config.schedule!r}: the PyTorch trainer runs {' or '.join(SCHEDULES)}."
        )
    root = Path(config.data_dir or "")
    if not config.data_dir or not (root / "train").is_dir() or not (root / "test").is_dir():
        raise InputError(
            f"--config.data_dir={config.data_dir or ''} is not an image folder: pass one (train/, test/)."
        )
    return config


def ours(config: ml_collections.ConfigDict, workdir: Path) -> list[dict[str, float]]:
    """The project's trainer, every seed a member of one run: each member's numbers."""
    from flax_resnets.training.loop import train_and_evaluate

    result = train_and_evaluate(config, workdir)
    records = read_run(workdir).metrics
    return [
        {
            "test_accuracy": member["test_accuracy"],
            "best_val_accuracy": max(r["seeds"][k]["val_accuracy"] or 0.0 for r in records),
            "final_train_loss": records[-1]["seeds"][k]["train_loss"],
            "final_train_accuracy": records[-1]["seeds"][k]["train_accuracy"],
        }
        for k, member in enumerate(result["seeds"])
    ]


def theirs(config: ml_collections.ConfigDict, seed: int) -> dict[str, float]:
    """The PyTorch trainer's run of seed ``seed``."""
    from flax_resnets.twins import torch_trainer

    their_recipe = torch_trainer.Recipe(
        model=config.model,
        epochs=config.num_epochs,
        train_images=config.train_images,
        **{field: config[field] for field in RECIPE_FIELDS},
    )
    return torch_trainer.train_and_test(Path(config.data_dir), their_recipe, seed)


def compare(ours_runs: list[dict], theirs_runs: list[dict]) -> dict[str, float]:
    """Means, standard deviations, and the difference of the mean test accuracies with its
    standard error (Welch's, the two sides' variances unpooled)."""
    summary = {}
    for side, runs in (("ours", ours_runs), ("theirs", theirs_runs)):
        for metric in METRICS:
            values = [run[metric] for run in runs]
            summary[f"{side} {metric} mean"] = statistics.fmean(values)
            summary[f"{side} {metric} std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    summary["difference"] = summary["ours test_accuracy mean"] - summary["theirs test_accuracy mean"]
    summary["standard error"] = (
        summary["ours test_accuracy std"] ** 2 / len(ours_runs)
        + summary["theirs test_accuracy std"] ** 2 / len(theirs_runs)
    ) ** 0.5
    summary["limit"] = 3 * summary["standard error"] + TOLERANCE_POINTS
    return summary


def main(argv: list[str]) -> int:
    parser = command_parser("parity --train", __doc__)
    add = parser.add_argument
    add("--cell", help="this Table 1 cell's recipe and model, e.g. cifar10_alexnet")
    add("--model", default="resnet20", help="without --cell: this model, the paper's recipe")
    add("--workdir_root", type=output_folder, help="keep our run's workdir here (default: temporary)")
    args, overrides = parse_command(parser, argv)
    require_models([args.model])
    config = recipe(args, overrides)
    seeds = members.member_seeds(config.seed, config.num_seeds)
    with tempfile.TemporaryDirectory() as scratch:
        print(f"ours: seeds {', '.join(map(str, seeds))}, the members of one run", flush=True)
        ours_runs = ours(config, (args.workdir_root or Path(scratch)) / "ours")
    theirs_runs = []
    for seed in seeds:
        print(f"seed {seed}: theirs", flush=True)
        theirs_runs.append(theirs(config, seed))
    rows = [
        {"seed": seed, "side": side, **{METRICS[m]: run[m] for m in METRICS}}
        for seed, ours_run, theirs_run in zip(seeds, ours_runs, theirs_runs, strict=True)
        for side, run in (("ours", ours_run), ("theirs", theirs_run))
    ]
    summary = compare(ours_runs, theirs_runs)
    print(format_table(rows))
    for side in ("ours", "theirs"):
        means = [
            f"{METRICS[m]} {summary[f'{side} {m} mean']:.4f} +- {summary[f'{side} {m} std']:.4f}"
            for m in METRICS
        ]
        print(f"{side:>6} ({len(seeds)} seeds): " + ", ".join(means))
    verdict = abs(summary["difference"]) <= summary["limit"]
    print(
        f"test accuracy, ours - theirs: {summary['difference']:+.2%} (standard error "
        f"{summary['standard error']:.2%}; limit 3 x SE + 0.5 points = {summary['limit']:.2%}): "
        + ("within seed noise" if verdict else "MORE THAN SEED NOISE EXPLAINS")
    )
    return 0 if verdict else 1
