"""``python -m flax_resnets parity --train``: the project's trainer against an independent PyTorch
trainer on the same images, several seeds each.

    python -m flax_resnets parity --train --model=resnet20 --data_dir=DIR --epochs=1 --seeds=5

**ours** is the project's own trainer (``train_and_evaluate``, what ``main.py`` runs) with the
paper's recipe (``flax_resnets.config.default_config``) on an image folder; **theirs** is
``flax_resnets.twins.torch_trainer``, which shares none of the project's data or training code.
Seed k is ``--seed + k`` on both sides (each side draws its own initialisation, order and
augmentation from it). Both read the same training images after the same 80/20 cut (a convention
each side implements on its own); ``--train_images=M`` keeps the first M of them, for quick checks.

Printed: per seed, test and best-validation accuracy and the last epoch's mean training loss on
both sides; the means and standard deviations; the difference of the mean test accuracies with
its standard error. Exit status 1 when they differ by more than 3 standard errors plus half a
point: more than seed noise explains.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from flax_resnets.cli import command_parser, positive_int
from flax_resnets.config import default_config
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
}


def recipe_arguments(parser: Any) -> None:
    """The recipe fields both sides take, defaulting to the paper's."""
    paper = default_config()
    for field in ("batch_size", "split_seed"):
        parser.add_argument(f"--{field}", type=int, default=paper[field])
    for field in ("learning_rate", "momentum", "weight_decay", "validation_fraction"):
        parser.add_argument(f"--{field}", type=float, default=paper[field])
    parser.add_argument(
        "--schedule",
        default=paper.schedule,
        choices=("cosine", "cosine_epochs"),
        help="cosine: updated every step (the paper's recipe here); cosine_epochs: once per epoch",
    )
    parser.add_argument(
        "--normalization",
        default=paper.normalization,
        choices=("data", "pytorch_cifar"),
        help="data: the training images' mean and std (the recipe here); pytorch_cifar: kuangliu's constants",
    )


def ours(args: Any, seed: int, workdir: Path) -> dict[str, float]:
    from flax_resnets.training.loop import train_and_evaluate

    config = default_config(dataset="image_folder", model=args.model)
    config.update(
        data_dir=str(args.data_dir),
        num_epochs=args.epochs,
        seed=seed,
        train_images=args.train_images,
        checkpoint_every_steps=0,
        log_every_steps=0,
        **{field: getattr(args, field) for field in RECIPE_FIELDS},
    )
    result = train_and_evaluate(config, workdir)
    records = read_jsonl(workdir / "metrics.jsonl")
    return {
        "test_accuracy": result["test_accuracy"],
        "best_val_accuracy": max(r["val_accuracy"] or 0.0 for r in records),
        "final_train_loss": records[-1]["train_loss"],
    }


def theirs(args: Any, seed: int) -> dict[str, float]:
    from flax_resnets.twins import torch_trainer

    recipe = torch_trainer.Recipe(
        model=args.model,
        epochs=args.epochs,
        train_images=args.train_images,
        **{field: getattr(args, field) for field in RECIPE_FIELDS},
    )
    return torch_trainer.train_and_test(args.data_dir, recipe, seed)


RECIPE_FIELDS = (
    "batch_size",
    "learning_rate",
    "momentum",
    "weight_decay",
    "validation_fraction",
    "split_seed",
    "schedule",
    "normalization",
)


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
    parser = command_parser("parity --train", __doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--data_dir", type=Path, required=True, help="an image folder (train/, test/)")
    parser.add_argument("--epochs", type=positive_int, default=1)
    parser.add_argument("--seeds", type=positive_int, default=3, help="runs per side")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--train_images", type=int, default=0, help="> 0: the first N training images")
    parser.add_argument("--workdir_root", type=Path, help="keep our runs' workdirs here (default: temporary)")
    recipe_arguments(parser)
    args = parser.parse_args(argv)
    require_models([args.model])
    if not (args.data_dir / "train").is_dir() or not (args.data_dir / "test").is_dir():
        raise InputError(f"--data_dir={args.data_dir} is not an image folder: it needs train/ and test/.")
    if args.seed < 0 or args.train_images < 0:
        raise InputError("--seed and --train_images must be 0 or more.")

    rows, ours_runs, theirs_runs = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        root = args.workdir_root or Path(scratch)
        for seed in range(args.seed, args.seed + args.seeds):
            print(f"seed {seed}: ours", flush=True)
            ours_runs.append(ours(args, seed, root / f"ours_seed{seed}"))
            print(f"seed {seed}: theirs", flush=True)
            theirs_runs.append(theirs(args, seed))
            for side, run in (("ours", ours_runs[-1]), ("theirs", theirs_runs[-1])):
                rows.append({"seed": seed, "side": side, **{METRICS[m]: run[m] for m in METRICS}})
            print(format_table(rows[-2:]), flush=True)
    summary = compare(ours_runs, theirs_runs)
    print(format_table(rows))
    for side in ("ours", "theirs"):
        means = [f"{METRICS[m]} {summary[f'{side} {m} mean']:.4f} +- {summary[f'{side} {m} std']:.4f}"
                 for m in METRICS]
        print(f"{side:>6} ({args.seeds} seeds): " + ", ".join(means))
    verdict = abs(summary["difference"]) <= summary["limit"]
    print(
        f"test accuracy, ours - theirs: {summary['difference']:+.2%} (standard error "
        f"{summary['standard error']:.2%}; limit 3 x SE + 0.5 points = {summary['limit']:.2%}): "
        + ("within seed noise" if verdict else "MORE THAN SEED NOISE EXPLAINS")
    )
    return 0 if verdict else 1
