"""``python -m flax_resnets table1 [RUN_DIRS...]``: the paper's Table 1, with our runs beside it.

Every cell shows our test accuracy beside the paper's and the difference, "-" where no run has
been kept yet. A run is a workdir (or a folder of its small files: config.json, metrics.jsonl,
eval.json, run.json); which cell it fills is read from what it trained on, so an image folder or
an exported file counts when it holds the whole dataset: the number of classes, channels and
images, and the pixel mean of the training images must be those of the paper's dataset.

Finished runs are kept in the repository under ``results/runs/<dataset>_<model>/``
(``--keep WORKDIR...`` copies them there), so the table fills up across machines and sessions;
the table itself is written to ``results/table1.md``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

from flax_resnets.cli import command_parser
from flax_resnets.config import default_config
from flax_resnets.data.sources import TFDS_STATISTICS
from flax_resnets.errors import InputError
from flax_resnets.files import write_text

DATASETS = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
TABLE_MODELS = {
    "alexnet": "AlexNet",
    "vgg19": "VGG19",
    "resnet18": "ResNet18",
    "resnet34": "ResNet34",
    "resnet50": "ResNet50",
}
# Table 1 of the paper: test accuracy (%) and parameter counts. (Its abstract quotes 93.6/89.6/65.2
# for ResNet18; the table is what we compare with.)
PAPER_ACCURACY = {
    "fashion_mnist": {"alexnet": 89.4, "vgg19": 89.6, "resnet18": 93.4, "resnet34": 93.7, "resnet50": 93.3},
    "cifar10": {"alexnet": 77.6, "vgg19": 74.7, "resnet18": 89.3, "resnet34": 89.6, "resnet50": 89.2},
    "cifar100": {"alexnet": 40.0, "vgg19": 47.9, "resnet18": 65.7, "resnet34": 65.2, "resnet50": 65.6},
}
# Each cell's name (as the sweep and configs/ name it) and its (dataset, model).
CELLS = {f"{dataset}_{model}": (dataset, model) for dataset in DATASETS for model in TABLE_MODELS}
PAPER_PARAMETERS = {"alexnet": "56M", "vgg19": "20M", "resnet18": "11M", "resnet34": "21M", "resnet50": "23M"}
# What identifies each dataset's full copy: classes, channels, training (+ validation) and test
# images; the training pixels' mean must be within MEAN_TOLERANCE of the published one.
SIGNATURES = {
    "fashion_mnist": (10, 1, 60_000, 10_000),
    "cifar10": (10, 3, 50_000, 10_000),
    "cifar100": (100, 3, 50_000, 10_000),
}
MEAN_TOLERANCE = 0.02
# Fields of the paper's recipe: a run that changes one of them is marked in its cell.
RECIPE_FIELDS = (
    "init",
    "batch_size",
    "num_epochs",
    "learning_rate",
    "momentum",
    "weight_decay",
    "validation_fraction",
    "augment",
    "normalization",
    "dtype",
)
RUN_FILES = ("config.json", "metrics.jsonl", "eval.json", "run.json")


def read_run(folder: Path) -> dict[str, Any]:
    """A finished run's files; a folder without them raises ``FileNotFoundError``, a damaged or
    incomplete one ``ValueError``, ``KeyError`` or ``TypeError``."""
    missing = [name for name in RUN_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a finished run: {', '.join(missing)} missing")
    run = {
        "folder": folder,
        "config": json.loads((folder / "config.json").read_text()),
        "eval": json.loads((folder / "eval.json").read_text()),
        "run": json.loads((folder / "run.json").read_text()),
    }
    float(run["eval"]["test_accuracy"]), str(run["config"]["model"]), str(run["run"]["finished"])
    return run


def paper_dataset(run: dict[str, Any]) -> str | None:
    """Which of the paper's datasets the run trained and tested on, or None."""
    data = run["run"]["data"]
    found = (len(data["class_names"]), data["channels"], data["train"] + data["validation"], data["test"])
    for name, signature in SIGNATURES.items():
        mean = TFDS_STATISTICS[name][0]
        close = all(abs(a - b) <= MEAN_TOLERANCE for a, b in zip(data["mean"], mean, strict=False))
        if found == signature and close:
            return name
    return None


def recipe_changes(config: dict[str, Any]) -> list[str]:
    """The paper's recipe fields that the run changed, as ``field=value``."""
    paper = default_config()
    return [f"{field}={config.get(field)!r}" for field in RECIPE_FIELDS if config.get(field) != paper[field]]


def from_image_folder(run: dict[str, Any]) -> bool:
    """Read from an image folder or a file exported from one (for CIFAR-10: the JPEG copy)."""
    return run["run"]["data"]["dataset"] == "image_folder"


def cell_runs(runs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The run shown in each cell: the paper's recipe before changed ones, then the latest."""
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: (not recipe_changes(r["config"]), r["run"]["finished"])):
        chosen[(run["dataset"], run["config"]["model"])] = run
    return chosen


def parameter_counts() -> dict[str, int]:
    """Our models' parameters at 10 classes and 3 channels, from their shapes only."""
    from flax import nnx

    from flax_resnets.models import count_parameters, create_model

    return {name: count_parameters(nnx.eval_shape(lambda n=name: create_model(n))) for name in TABLE_MODELS}


def markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def seed_accuracies(run: dict[str, Any]) -> list[float]:
    """Test accuracy (%) of each seed of a run (one, for a run from before runs had seeds)."""
    evaluation = run["eval"]
    members = evaluation.get("seeds") or [evaluation]
    return [100 * float(member["test_accuracy"]) for member in members]


def format_cell(dataset: str, model: str, run: dict[str, Any] | None) -> str:
    """``mean +- std (n)`` of the run's seeds beside the paper's value, the difference, and marks."""
    paper = PAPER_ACCURACY[dataset][model]
    if run is None:
        return f"- / {paper:.1f}"
    accuracies = seed_accuracies(run)
    ours = statistics.fmean(accuracies)
    spread = ""
    outside = False
    if len(accuracies) > 1:
        std = statistics.stdev(accuracies)
        spread = f" ± {std:.1f}"
        outside = abs(paper - ours) > 2 * std
    marks = (
        ("†" if dataset == "cifar10" and from_image_folder(run) else "")
        + ("*" if recipe_changes(run["config"]) else "")
        + ("‡" if outside else "")
    )
    return f"**{ours:.1f}{spread}** ({len(accuracies)}) / {paper:.1f} ({ours - paper:+.1f}){marks}"


def render(runs: list[dict[str, Any]], skipped: list[str]) -> str:
    """Table 1 in Markdown, then the runs it shows and the folders it could not use."""
    cells = cell_runs(runs)
    counts = parameter_counts()
    lines = [
        "# Table 1, reproduced",
        "",
        "Test accuracy (%) of the best checkpoint by validation accuracy: **ours**, the mean ± "
        "standard deviation over seeds (the number of seeds) / the paper's (ours - paper's); "
        '"-": not run yet. Regenerate with `python -m flax_resnets table1`.',
        "",
        markdown_row(["", *TABLE_MODELS.values()]),
        "|---" * (1 + len(TABLE_MODELS)) + "|",
        markdown_row(["parameters, paper", *(PAPER_PARAMETERS[m] for m in TABLE_MODELS)]),
        markdown_row(["parameters, ours (10 classes)", *(f"{counts[m] / 1e6:.1f}M" for m in TABLE_MODELS)]),
    ]
    for dataset, title in DATASETS.items():
        lines.append(
            markdown_row([title, *(format_cell(dataset, m, cells.get((dataset, m))) for m in TABLE_MODELS)])
        )
    lines += [
        "",
        "† CIFAR-10 read from a JPEG copy (quality 75): expect about a point below "
        "CIFAR-10 itself.  \n* The run changed the paper's recipe (see its row below).  \n"
        "‡ The paper's value lies outside our mean ± 2 standard deviations.",
        "",
        "## Runs shown",
        "",
        markdown_row(
            ["cell", "run", "seeds", "device", "dtype", "epochs", "wall time", "commit", "data"]
            + ["recipe changes"]
        ),
        "|---" * 10 + "|",
    ]
    for (dataset, model), run in sorted(cells.items()):
        record = run["run"]
        data = record["data"]
        source = (
            data["dataset"]
            if data["dataset"] != "image_folder"
            else f"image folder `{Path(str(data['data_dir'])).name}`"
        )
        row = [
            f"{DATASETS[dataset]} {TABLE_MODELS[model]}",
            f"`{run['folder'].name}`",
            str(len(seed_accuracies(run))),
            f"{record['device']} x{record['device_count']}",
            record["dtype"],
            str(record["epochs"]),
            f"{record['wall_seconds'] / 60:.1f} min",
            f"`{record['commit'][:12]}`",
            source,
            ", ".join(recipe_changes(run["config"])) or "none",
        ]
        lines.append(markdown_row(row))
    if skipped:
        lines += ["", "## Not in the table", ""] + [f"- {reason}" for reason in skipped]
    return "\n".join(lines) + "\n"


def collect(folders: list[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """The Table 1 runs among ``folders``, and why each of the others is left out."""
    runs, skipped = [], []
    for folder in folders:
        try:
            run = read_run(folder)
            run["dataset"] = paper_dataset(run)
        except FileNotFoundError as error:
            skipped.append(str(error))
            continue
        except (OSError, ValueError, KeyError, TypeError) as error:  # a damaged or hand-edited file
            skipped.append(f"{folder}: its files cannot be read ({type(error).__name__}: {error})")
            continue
        if run["dataset"] is None:
            skipped.append(f"{folder}: trained on data that is not a whole dataset of the paper")
        elif run["config"]["model"] not in TABLE_MODELS:
            skipped.append(f"{folder}: {run['config']['model']} is not a model of Table 1")
        else:
            runs.append(run)
    return runs, skipped


def keep(workdir: Path, results: Path) -> Path:
    """Copy a finished run on a paper dataset to ``results/runs/<dataset>_<model>/`` (its small
    files only). Models outside Table 1 (a rehearsal's resnet8) are kept but not shown."""
    run = read_run(workdir)
    dataset = paper_dataset(run)
    if dataset is None:
        raise ValueError(f"{workdir} did not train on a whole dataset of the paper")
    target = results / "runs" / f"{dataset}_{run['config']['model']}"
    target.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        shutil.copyfile(workdir / name, target / name)
    return target


def main(argv: list[str]) -> int:
    parser = command_parser("table1", __doc__.splitlines()[0])
    parser.add_argument(
        "run_dirs", nargs="*", type=Path, help="runs to show beside the kept ones (a preview)"
    )
    parser.add_argument("--results", type=Path, default=Path("results"), help="the results folder")
    parser.add_argument(
        "--keep",
        nargs="+",
        type=Path,
        default=[],
        help="copy these finished workdirs into results/runs first",
    )
    parser.add_argument(
        "--out", type=Path, help="write the table here (default: RESULTS/table1.md without RUN_DIRS)"
    )
    args = parser.parse_args(argv)
    for workdir in args.keep:
        try:
            print(f"kept {workdir} as {keep(workdir, args.results)}")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InputError(f"{error}: only finished runs on the paper's datasets can be kept.") from error
    kept = sorted(p for p in (args.results / "runs").glob("*") if p.is_dir())
    runs, skipped = collect([*kept, *args.run_dirs])
    table = render(runs, skipped)
    print(table, end="")
    out = args.out or (None if args.run_dirs else args.results / "table1.md")
    if out is None:
        print("(a preview: nothing written; --keep keeps the runs, --out writes the table)", file=sys.stderr)
        return 0
    write_text(out, table)
    print(f"(written to {out})", file=sys.stderr)
    return 0

