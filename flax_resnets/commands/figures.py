"""``python -m flax_resnets figures degradation|landscape``: the paper's two pictures, made here.

    python -m flax_resnets figures degradation --config.data_dir=DIR --out=results/figures
    python -m flax_resnets figures landscape --workdir=RUN --workdir=OTHER_RUN --grid=21 --out=DIR

degradation: plain and residual nets' training and test error per epoch (He et al. 2016, Fig. 6).
landscape: the training loss around each run's checkpoint on a plane of two filter-normalised random
directions (Li et al. 2018). Each writes a PNG and its numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from flax_resnets.checks import seed_argument, validate_config, with_overrides
from flax_resnets.cli import command_parser, output_folder, parse_command, user_path
from flax_resnets.config import default_config
from flax_resnets.data.sources import load_config_dataset
from flax_resnets.errors import InputError
from flax_resnets.files import atomic_write, write_json
from flax_resnets.inference import landscape, load_run
from flax_resnets.models import RESIDUAL_TWINS, require_models
from flax_resnets.progress import progress
from flax_resnets.runs.plots import plot_degradation, plot_landscapes
from flax_resnets.runs.workdir import read_run
from flax_resnets.training.evaluate import evaluate_workdir
from flax_resnets.training.loop import train_and_evaluate

HE_RECIPE = {
    "batch_size": 128,
    "schedule": "multistep",
    "learning_rate": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "init": "he",
    "normalization": "data",  # He et al. subtract the pixels' mean
    "augment_validation": False,
}


def degradation(args: Any, overrides: list[str]) -> int:
    models = args.models.split(",")
    require_models(models)
    plain = [m for m in models if m in RESIDUAL_TWINS]
    if not plain or len(plain) == len(models):
        raise InputError("--models needs plain and residual nets, e.g. plain20,resnet20,plain56,resnet56.")
    configs = {}
    dataset = with_overrides(default_config(dataset="image_folder"), overrides).dataset  # its defaults
    for name in models:
        config = default_config(dataset=dataset, model=name)
        config.update(num_epochs=4, checkpoint_every_steps=0, **(HE_RECIPE if args.recipe == "he" else {}))
        configs[name] = with_overrides(config, overrides)
        configs[name].keep_checkpoints = configs[name].num_epochs  # every epoch's checkpoint, to test each
        validate_config(configs[name])
    runs = {}
    for name, config in configs.items():
        workdir = args.out / "runs" / name
        print(f"{name}: training {config.num_epochs} epoch(s) in {workdir}", flush=True)
        train_and_evaluate(config, workdir)
        records = read_run(workdir).metrics
        test_errors = [1 - evaluate_workdir(None, workdir, str(r["step"]))["test_accuracy"] for r in records]
        runs[name] = {
            "epoch": [r["epoch"] for r in records],
            "train_error": [1 - r["train_accuracy"] for r in records],
            "test_error": test_errors,
        }
    fields = (
        "num_epochs",
        "train_images",
        "seed",
        "num_seeds",
        "dataset",
        "data_dir",
        *HE_RECIPE,
        "batch_size",
    )
    settings = {"recipe": args.recipe, **{field: config[field] for field in fields}}
    write_json(args.out / "degradation.json", {"settings": settings, "runs": runs})
    images = f"{config.train_images} training images" if config.train_images else "all training images"
    full = {"he": 164, "paper": 20}[args.recipe]  # epochs of the full schedule (He et al.: 64k iterations)
    shortened = f", shortened from {full}" if config.num_epochs < full else ""
    seeds = f", mean of {config.num_seeds} seeds" if config.num_seeds > 1 else ""
    title = f"{args.recipe} recipe, {config.num_epochs} epoch(s){shortened} on {images}{seeds}"
    print(f"wrote {plot_degradation(runs, title, args.out / 'degradation.png')}")
    return 0


def surface(workdir: Path, args: Any) -> dict[str, Any]:
    """The loss and accuracy grid around a run's checkpoint (of the member ``--seed`` names, as
    predict and export choose it)."""
    run = load_run(workdir, args.checkpoint, args.seed)
    dataset = load_config_dataset(run.config)
    dataset = dataclasses.replace(
        dataset, train=dataset.train.take(np.arange(args.images or len(dataset.train)))
    )
    _, params, batch_stats = nnx.split(run.model, nnx.Param, nnx.BatchStat)
    keys = jax.random.split(jax.random.key(args.directions_seed))
    directions = tuple(landscape.filter_normalised_direction(params, key) for key in keys)
    axis = np.linspace(-args.span, args.span, args.grid)
    coordinates = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    with progress(len(coordinates), f"{workdir.name} landscape", "point", in_logs=True) as bar:
        model_state = {"params": params, "batch_stats": batch_stats}
        loss, accuracy = landscape.loss_surface(
            run.config, dataset, model_state, directions, coordinates, progress=bar.update
        )
    grid = {"loss": loss.reshape(args.grid, args.grid), "accuracy": accuracy.reshape(args.grid, args.grid)}
    name = f"{run.name} (seed {run.seed}, step {run.checkpoint_step})"
    return {"name": name, "x": axis, "y": axis, **grid}


def landscapes(args: Any) -> int:
    surfaces = [surface(Path(workdir), args) for workdir in args.workdir]
    arrays = {
        "directions_seed": args.directions_seed,
        "images": args.images,
        "names": np.array([s["name"] for s in surfaces]),
    }
    for index, found in enumerate(surfaces):
        arrays.update({f"{key}_{index}": found[key] for key in ("x", "y", "loss", "accuracy")})
    atomic_write(args.out / "landscape.npz", lambda f: np.savez(f, **arrays), binary=True)
    print(f"wrote {args.out / 'landscape.npz'} and {plot_landscapes(surfaces, args.out / 'landscape.png')}")
    return 0


def grid_points(text: str) -> int:
    """argparse type of --grid: a surface needs two points per axis at least."""
    if not (text.strip().isdigit() and int(text) >= 2):
        raise argparse.ArgumentTypeError(f"expected 2 or more points per axis, got {text!r}")
    return int(text)


def main(argv: list[str]) -> int:
    parser = command_parser("figures", __doc__)
    kinds = parser.add_subparsers(dest="figure", required=True)
    drawing = kinds.add_parser("degradation", help="plain vs residual networks of several depths")
    drawing.add_argument("--models", default="plain20,plain56,resnet20,resnet56")
    drawing.add_argument("--recipe", choices=("he", "paper"), default="he")
    drawing.add_argument("--out", type=output_folder, required=True)
    surveying = kinds.add_parser("landscape", help="the loss around trained checkpoints")
    surveying.add_argument("--workdir", action="append", type=user_path, required=True, help="a run (repeat)")
    surveying.add_argument("--checkpoint", default="best", help="best, latest or a step number")
    surveying.add_argument("--seed", type=seed_argument, help="which member of a run of several seeds")
    surveying.add_argument("--grid", type=grid_points, default=51, help="points per axis (2 or more)")
    surveying.add_argument("--span", type=float, default=1.0, help="the grid covers [-span, span]^2")
    surveying.add_argument("--images", type=int, default=0, help="training images the loss is over (0: all)")
    surveying.add_argument("--directions_seed", type=seed_argument, default=0, help="draws the directions")
    surveying.add_argument("--out", type=output_folder, required=True)
    args, overrides = parse_command(parser, argv)
    if args.figure == "degradation":
        return degradation(args, overrides)
    if overrides:
        raise InputError(f"{overrides[0]}: a landscape reads its runs' own configs; leave the overrides out.")
    return landscapes(args)
