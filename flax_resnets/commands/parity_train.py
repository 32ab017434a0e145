"""``python -m flax_resnets parity --train``: the project's trainer against an independent PyTorch
trainer on the same images, several seeds each.

    python -m flax_resnets parity --train --cell=cifar10_alexnet --data_dir=DIR --epochs=1 --seeds=3
    python -m flax_resnets parity --train --model=resnet20 --data_dir=DIR --epochs=1 --seeds=5

**ours** is the project's own trainer (``train_and_evaluate``, what ``main.py`` runs) on an image
folder, with the recipe of a Table 1 cell (``--cell``: ``flax_resnets.config.cell_config``, its
model included) or the paper's recipe for ``--model`` (``flax_resnets.config.default_config``);
**theirs** is ``flax_resnets.twins.torch_trainer``, which shares none of the project's data or
training code and follows the paper's notebooks. The recipe's fields are flags on both sides.
Seed k is ``--seed + k`` on both sides (each side draws its own initialisation, order,
augmentation and dropout from it). Both read the same training images after the same 80/20 cut (a
convention each side implements on its own); ``--train_images=M`` keeps the first M of them, for
quick checks.

Printed: per seed, test and best-validation accuracy and the last epoch's mean training loss and
accuracy on both sides; the means and standard deviations; the difference of the mean test
accuracies with its standard error. Exit status 1 when they differ by more than 3 standard errors
plus half a point: more than seed noise explains.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import ml_collections

from flax_resnets.checks import seed_argument, validate_config
from flax_resnets.cli import command_parser, output_folder, positive_int, user_path
from flax_resnets.config import cell_config, default_config
from flax_resnets.errors import InputError
from flax_resnets.models import require_models
from flax_resnets.runs.metrics import read_jsonl
from flax_resnets.runs.summary import format_table

TOLERANCE_POINTS = 0.005  # beyond 3 standard errors, half a point of accuracy
# Each run's numbers, and their columns in the printed tables.
METRICS = {
    "test_accuracy": "test acc",
    "best_val_accuracy": "best val acc",
    "final_train_loss": "final train loss",
    "final_train_accuracy": "final train acc",
}
# The recipe fields both sides take (flags; by default the cell's or the paper's).
RECIPE_FIELDS = {
    "batch_size": int,
    "learning_rate": float,
    "momentum": float,
    "weight_decay": float,
    "validation_fraction": float,
    "split_seed": int,
    "schedule": str,
    "cosine_period_epochs": int,
    "normalization": str,
    "image_channels": int,
    "pad_after_normalization": bool,
    "augment_validation": bool,
}
CHOICES = {
    "schedule": ("cosine_epochs", "cosine"),
    "normalization": ("plus_minus_one", "data", "pytorch_cifar"),
    "image_channels": (0, 3),
}


def true_or_false(text: str) -> bool:
    """argparse type: True or False."""
    if text not in ("True", "False"):
        raise ValueError(text)
    return text == "True"


def recipe_arguments(parser: Any) -> None:
    """A flag per recipe field, overriding the recipe's value when given."""
    for field, kind in RECIPE_FIELDS.items():
        parser.add_argument(
            f"--{field}",
            type=true_or_false if kind is bool else kind,
            choices=CHOICES.get(field),
            help="default: the recipe's",
        )


def recipe(args: Any) -> ml_collections.ConfigDict:
    """The run config both sides train with: the cell's or the model's recipe on the image folder,
    for ``--epochs`` epochs, with the flags given."""
    config = cell_config(args.cell) if args.cell else default_config(model=args.model)
    config.update(
        dataset="image_folder",
        data_dir=str(args.data_dir),
        num_epochs=args.epochs,
        train_images=args.train_images,
        checkpoint_every_steps=0,
        log_every_steps=0,
        **{field: getattr(args, field) for field in RECIPE_FIELDS if getattr(args, field) is not None},
    )
    validate_config(config)
    return config


def ours(config: ml_collections.ConfigDict, seed: int, workdir: Path) -> dict[str, float]:
    from flax_resnets.training.loop import train_and_evaluate

    config = config.copy_and_resolve_references()
    config.seed = seed
    result = train_and_evaluate(config, workdir)
    records = read_jsonl(workdir / "metrics.jsonl")
    return {
        "test_accuracy": result["test_accuracy"],
        "best_val_accuracy": max(r["val_accuracy"] or 0.0 for r in records),
        "final_train_loss": records[-1]["train_loss"],
        "final_train_accuracy": records[-1]["train_accuracy"],
    }


def theirs(config: ml_collections.ConfigDict, seed: int) -> dict[str, float]:
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
    parser.add_argument("--cell", help="this Table 1 cell's recipe and model, e.g. cifar10_alexnet")
    parser.add_argument("--model", default="resnet20", help="without --cell: this model, the paper's recipe")
    parser.add_argument("--data_dir", type=user_path, required=True, help="an image folder (train/, test/)")
    parser.add_argument("--epochs", type=positive_int, default=1)
    parser.add_argument("--seeds", type=positive_int, default=3, help="runs per side")
    parser.add_argument("--seed", type=seed_argument, default=0, help="the first seed")
    parser.add_argument("--train_images", type=int, default=0, help="> 0: the first N training images")
    parser.add_argument(
        "--workdir_root", type=output_folder, help="keep our runs' workdirs here (default: temporary)"
    )
    recipe_arguments(parser)
    args = parser.parse_args(argv)
    require_models([args.model])
    if not (args.data_dir / "train").is_dir() or not (args.data_dir / "test").is_dir():
        raise InputError(f"--data_dir={args.data_dir} is not an image folder: it needs train/ and test/.")
    if args.seed < 0 or args.train_images < 0:
        raise InputError("--seed and --train_images must be 0 or more.")
    config = recipe(args)

    rows, ours_runs, theirs_runs = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        root = args.workdir_root or Path(scratch)
        for seed in range(args.seed, args.seed + args.seeds):
            print(f"seed {seed}: ours", flush=True)
            ours_runs.append(ours(config, seed, root / f"ours_seed{seed}"))
            print(f"seed {seed}: theirs", flush=True)
            theirs_runs.append(theirs(config, seed))
            for side, run in (("ours", ours_runs[-1]), ("theirs", theirs_runs[-1])):
                rows.append({"seed": seed, "side": side, **{METRICS[m]: run[m] for m in METRICS}})
            print(format_table(rows[-2:]), flush=True)
    summary = compare(ours_runs, theirs_runs)
    print(format_table(rows))
    for side in ("ours", "theirs"):
        means = [
            f"{METRICS[m]} {summary[f'{side} {m} mean']:.4f} +- {summary[f'{side} {m} std']:.4f}"
            for m in METRICS
        ]
        print(f"{side:>6} ({args.seeds} seeds): " + ", ".join(means))
    verdict = abs(summary["difference"]) <= summary["limit"]
    print(
        f"test accuracy, ours - theirs: {summary['difference']:+.2%} (standard error "
        f"{summary['standard error']:.2%}; limit 3 x SE + 0.5 points = {summary['limit']:.2%}): "
        + ("within seed noise" if verdict else "MORE THAN SEED NOISE EXPLAINS")
    )
    return 0 if verdict else 1
