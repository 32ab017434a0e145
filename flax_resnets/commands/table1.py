"""``python -m flax_resnets table1 [RUN_DIRS...]``: the paper's Table 1, with our runs beside it.

Each cell: our seeds' test accuracy beside the paper's own run's (for CIFAR-100 VGG19 also the
validation accuracy after epoch 20, which is Table 1's 47.9), from runs on whole datasets of the
paper; ``--keep WORKDIR...`` copies finished runs into ``results/runs/<cell>/<run>/``, so that the
table (``results/table1.md``) fills up across machines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import statistics
import sys
from pathlib import Path
from typing import Any

from flax_resnets.cli import command_parser, output_file, output_folder, user_path
from flax_resnets.config import TABLE1_DATASETS, TABLE1_MODELS, cell_config
from flax_resnets.data.sources import TFDS_SIZES, TFDS_STATISTICS
from flax_resnets.errors import InputError
from flax_resnets.files import write_folder, write_text
from flax_resnets.models import layer_init
from flax_resnets.runs.paper import TABLE1_IS_VALIDATION, paper_runs
from flax_resnets.runs.workdir import FINISHED_RUN_FILES, RunFiles, UnfinishedRunError, read_run

DATASETS = dict(zip(TABLE1_DATASETS, ("Fashion-MNIST", "CIFAR-10", "CIFAR-100"), strict=True))
TABLE_MODELS = dict(zip(TABLE1_MODELS, ("AlexNet", "VGG19", "ResNet18", "ResNet34", "ResNet50"), strict=True))
# Each cell's name (as the sweep and configs/ name it) and its (dataset, column).
CELLS = {f"{dataset}_{model}": (dataset, model) for dataset in DATASETS for model in TABLE_MODELS}
# The column of a model that is not itself one: the CIFAR-100 cell's VGG19 with BatchNorm.
COLUMNS = {"vgg19_bn": "vgg19"}
PAPER_PARAMETERS = {"alexnet": "56M", "vgg19": "20M", "resnet18": "11M", "resnet34": "21M", "resnet50": "23M"}
# A whole copy of a dataset has its classes, channels and images (``TFDS_SIZES``), and the
# training pixels' mean within MEAN_TOLERANCE of the published one.
MEAN_TOLERANCE = 0.02
# Fields that do not change what a run computes (where its data is, how it is fed, how often it
# saves or prints, which seeds), and paper_cell, its label: every other field is the recipe. A run
# on part of the data (train_images) is no whole dataset: it fills no cell.
NOT_RECIPE = (
    *("dataset", "data_dir", "download", "train_images", "split_seed", "seed", "num_seeds", "steps_per_call"),
    *("eval_batch_size", "checkpoint_every_steps", "keep_checkpoints", "log_every_steps", "distributed"),
    "paper_cell",
)


@dataclasses.dataclass(frozen=True)
class CellRun:
    """A finished run that fills a Table 1 cell, and the fields of the cell's recipe it changed."""

    files: RunFiles
    cell: str
    changes: list[str]


def paper_dataset(run: RunFiles) -> str | None:
    """Which of the paper's datasets the run trained and tested on, or None."""
    data = run.record["data"]
    for name, (classes, channels, images, test) in TFDS_SIZES.items():
        mean = TFDS_STATISTICS[name][0] * (data["channels"] // channels)
        close = len(data["mean"]) == len(mean) and all(
            abs(a - b) <= MEAN_TOLERANCE for a, b in zip(data["mean"], mean, strict=True)
        )
        counts = (len(data["class_names"]), data["train"] + data["validation"], data["test"])
        if counts == (classes, images, test) and data["channels"] in (channels, 3) and close:
            return name
    return None


def not_whole(run: RunFiles) -> str:
    """Why a run whose data is not a whole dataset of the paper fills no cell."""
    if run.config.get("train_images"):
        return f"trained with train_images={run.config['train_images']} (a quick check), not a whole dataset"
    return "trained on data that is not a whole dataset of the paper"


def column(model: str) -> str:
    """The Table 1 column a model's run fills (or the model itself, if none)."""
    return COLUMNS.get(model, model)


def recipe_changes(config: dict[str, Any], cell: str) -> list[str]:
    """The recipe fields in which the run differs from ``cell``'s, as ``field=value`` (an ``init``
    by what it builds: "pytorch" is the paper's for a ResNet)."""
    recipe = cell_config(cell)
    changes = []
    for field in recipe:
        ours, theirs = config.get(field), recipe[field]
        if field == "init":
            ours, theirs = layer_init(config["model"], ours), layer_init(recipe.model, theirs)
        if field not in NOT_RECIPE and ours != theirs:
            changes.append(f"{field}={config.get(field)!r}")
    return changes


def cell_runs(runs: list[CellRun]) -> dict[str, CellRun]:
    """The run shown in each cell: the cell's recipe before changed ones, then the latest."""
    chosen: dict[str, CellRun] = {}
    for run in sorted(runs, key=lambda r: (not r.changes, r.files.record["finished"])):
        chosen[run.cell] = run
    return chosen


def parameter_counts() -> dict[str, int]:
    """Our models' parameters at 10 classes and 3 channels, from their shapes only."""
    from flax_resnets.models import abstract_model, count_parameters

    return {name: count_parameters(abstract_model(name)) for name in TABLE_MODELS}


def markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def seed_accuracies(run: RunFiles) -> list[float]:
    """Test accuracy (%) of each seed of a run."""
    return [100 * float(member["test_accuracy"]) for member in run.evaluation["seeds"]]


def seed_validation_accuracies(run: RunFiles, epoch: int) -> list[float] | None:
    """Validation accuracy (%) of each seed after ``epoch``, or None if the run has no such epoch."""
    record = next((r for r in run.metrics if r["epoch"] == epoch), None)
    if record is None or record.get("val_accuracy") is None:
        return None
    return [100 * float(member["val_accuracy"]) for member in record["seeds"]]


def compared(ours: list[float], paper: float, digits: int) -> tuple[str, bool]:
    """``**mean ± std** (n) / paper (diff.)``, and whether the paper's lies outside mean ± 2 std."""
    mean = statistics.fmean(ours)
    spread, outside = "", False
    if len(ours) > 1:
        std = statistics.stdev(ours)
        spread, outside = f" ± {std:.1f}", abs(paper - mean) > 2 * std
    difference = round(mean - paper, 1) + 0.0  # + 0.0: never "-0.0"
    return f"**{mean:.1f}{spread}** ({len(ours)}) / {paper:.{digits}f} ({difference:+.1f})", outside


def format_cell(cell: str, shown: CellRun | None) -> str:
    """Our seeds' test accuracy beside the paper's logged one, the difference, and marks; for the
    cell whose Table 1 number is a validation accuracy, that one too."""
    logged = paper_runs()[cell]
    validation_epoch = TABLE1_IS_VALIDATION.get(cell)
    texts, outside = [f"- / {logged['test_acc']:.2f}"], False
    if shown:
        texts[0], outside = compared(seed_accuracies(shown.files), logged["test_acc"], 2)
    if validation_epoch:
        ours = shown and seed_validation_accuracies(shown.files, validation_epoch)
        paper = logged["table1_value"]
        text, outside_too = compared(ours, paper, 1) if ours else (f"- / {paper:.1f}", False)
        texts.append(f"val. ep. {validation_epoch}: {text}")
        outside = outside or outside_too
    if shown is None:
        return "; ".join(texts)
    run = shown.files
    marks = (
        ("†" if cell.startswith("cifar10_") and run.record["data"]["dataset"] == "image_folder" else "")
        + ("*" if shown.changes else "")
        + ("‡" if outside else "")
    )
    return "; ".join(texts) + marks


def run_row(cell: str, shown: CellRun) -> list[str]:
    """The row of ``Runs shown`` for the run shown in ``cell``: where, how and from what it ran."""
    dataset, model = CELLS[cell]
    record = shown.files.record
    data = record["data"]
    source = data["dataset"]
    if source == "image_folder":
        source = f"image folder `{Path(str(data['data_dir'])).name}`"
    return [
        f"{DATASETS[dataset]} {TABLE_MODELS[model]}",
        f"`{shown.files.folder.name}`",
        str(len(seed_accuracies(shown.files))),
        f"{record['device']} x{record['device_count']}",
        record["dtype"],
        str(record["epochs"]),
        f"{record['wall_seconds'] / 60:.1f} min",
        f"`{record['commit'][:12]}`",
        source,
        ", ".join(shown.changes) or "none",
    ]


def render(runs: list[CellRun], skipped: list[str]) -> str:
    """Table 1 in Markdown, then the runs it shows and the folders it could not use."""
    cells = cell_runs(runs)
    counts = parameter_counts()
    lines = [
        "# Table 1, reproduced",
        "",
        "Test accuracy (%) of the best checkpoint by validation accuracy: **ours**, the mean ± "
        "standard deviation over seeds (the number of seeds) / the paper's, as its own run of the "
        'cell logged it (ours - paper\'s); "-": not run yet. Table 1 prints the logged values '
        "rounded to 0.1, except CIFAR-100 VGG19: its 47.9 is that run's validation accuracy (on "
        "augmented images) after epoch 20 of 40, shown second in the cell; the run's test accuracy "
        "is 58.70. Regenerate with `python -m flax_resnets table1`.",
        "",
        markdown_row(["", *TABLE_MODELS.values()]),
        "|---" * (1 + len(TABLE_MODELS)) + "|",
        markdown_row(["parameters, paper", *(PAPER_PARAMETERS[m] for m in TABLE_MODELS)]),
        markdown_row(["parameters, ours (10 classes)", *(f"{counts[m] / 1e6:.1f}M" for m in TABLE_MODELS)]),
    ]
    for dataset, title in DATASETS.items():
        row = [format_cell(f"{dataset}_{model}", cells.get(f"{dataset}_{model}")) for model in TABLE_MODELS]
        lines.append(markdown_row([title, *row]))
    lines += [
        "",
        "† CIFAR-10 read from a JPEG copy (quality 75): expect about a point below "
        "CIFAR-10 itself.  \n* The run's recipe is not the cell's as the paper's code ran it (see its "
        "row below).  \n‡ The paper's value lies outside our mean ± 2 standard deviations.",
        "",
        "## Runs shown",
        "",
        markdown_row(
            ["cell", "run", "seeds", "device", "dtype", "epochs", "wall time", "commit", "data"]
            + ["recipe changes"]
        ),
        "|---" * 10 + "|",
    ]
    lines += [markdown_row(run_row(cell, run)) for cell, run in sorted(cells.items())]
    if skipped:
        lines += ["", "## Not in the table", ""] + [f"- {reason}" for reason in skipped]
    return "\n".join(lines) + "\n"


def collect(folders: list[Path]) -> tuple[list[CellRun], list[str]]:
    """The Table 1 runs among ``folders`` (each with its ``cell`` and recipe ``changes``), and why
    each of the others is left out."""
    runs, skipped = [], []
    for folder in folders:
        try:
            run = read_run(folder, finished=True)
            dataset = paper_dataset(run)
        except UnfinishedRunError as error:
            skipped.append(str(error))
            continue
        except (OSError, InputError, ValueError, KeyError, TypeError) as error:  # damaged, hand-edited
            skipped.append(f"{folder}: its files cannot be read ({type(error).__name__}: {error})")
            continue
        cell = f"{dataset}_{column(run.config['model'])}"
        if dataset is None:
            skipped.append(f"{folder}: {not_whole(run)}")
        elif cell not in CELLS:
            skipped.append(f"{folder}: {run.config['model']} is not a model of Table 1")
        else:
            runs.append(CellRun(run, cell, recipe_changes(run.config, cell)))
    return runs, skipped


KEPT_RECIPE_CHARACTERS = 100  # of a kept run's folder name: with its seeds and time, at most ~140


def kept_name(run: RunFiles, changes: list[str]) -> str:
    """A kept run's folder in its cell: what differs from the cell's recipe ("paper_recipe" when
    nothing does; a long list, its start and a hash of it whole), its seeds and when it finished,
    in characters any file system takes."""
    config = run.config
    first, count = int(config.get("seed", 0)), int(config.get("num_seeds", 1))
    seeds = f"seed{first}" if count == 1 else f"seeds{first}-{first + count - 1}"
    finished = re.sub(r"[^0-9]", "", str(run.record["finished"]))[:14]
    recipe = "+".join(changes).replace("'", "").replace('"', "") or "paper_recipe"
    if len(recipe) > KEPT_RECIPE_CHARACTERS:
        recipe = f"{recipe[:KEPT_RECIPE_CHARACTERS - 11]}+{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"
    return re.sub(r"[^A-Za-z0-9.=+-]+", "_", f"{recipe}_{seeds}_{finished}").strip("._")


def keep(workdir: Path, results: Path) -> Path:
    """Copy a finished run on a paper dataset to ``results/runs/<cell>/<kept_name>/`` (its small files),
    whole or not at all; a run kept before is left as it is; anything else refused in one line."""
    try:
        run = read_run(workdir, finished=True)
        dataset = paper_dataset(run)
        files = {name: (workdir / name).read_bytes() for name in FINISHED_RUN_FILES}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"{error}: only finished runs on the paper's datasets can be kept.") from error
    if dataset is None:
        raise InputError(f"{workdir} {not_whole(run)}: it cannot be kept.")
    cell = f"{dataset}_{column(run.config['model'])}"
    changes = recipe_changes(run.config, cell) if cell in CELLS else [f"model={run.config['model']}"]
    target = results / "runs" / cell / kept_name(run, changes)
    if target.is_dir() and all(
        (target / name).is_file() and (target / name).read_bytes() == files[name] for name in files
    ):
        return target  # kept before (or ``workdir`` is the kept folder itself)
    try:
        write_folder(target, files)
    except OSError as error:
        raise InputError(
            f"cannot keep {workdir} as {target} ({error.strerror or error}): nothing was written; "
            "free or fix that place and keep it again."
        ) from error
    return target


def kept_runs(results: Path) -> list[Path]:
    """Every kept run's folder: ``runs/<cell>/<run>/``."""
    cells = sorted(p for p in (results / "runs").glob("*") if p.is_dir())
    runs = [run for cell in cells for run in sorted(cell.iterdir())]
    return [run for run in runs if run.is_dir() and not run.name.startswith(".")]


def main(argv: list[str]) -> int:
    parser = command_parser("table1", __doc__)
    add = parser.add_argument
    add("run_dirs", nargs="*", type=user_path, help="runs to show beside the kept ones (a preview)")
    add(
        "--results",
        type=output_folder,
        default=Path("results"),
        help="the results folder (read, and written)",
    )
    add(
        "--keep", nargs="+", type=user_path, default=[], help="copy these finished workdirs into results/runs"
    )
    add("--out", type=output_file, help="write the table here (default: RESULTS/table1.md without RUN_DIRS)")
    args = parser.parse_args(argv)
    for workdir in args.keep:
        print(f"kept {workdir} as {keep(workdir, args.results).resolve()}")
    missing = [str(folder) for folder in args.run_dirs if not folder.is_dir()]
    if missing:
        raise InputError(f"{', '.join(missing)}: no such folder; pass the workdirs of finished runs.")
    runs, skipped = collect([*kept_runs(args.results), *args.run_dirs])
    table = render(runs, skipped)
    print(table, end="")
    out = args.out or (None if args.run_dirs else args.results / "table1.md")
    if out is None:
        print("(a preview: nothing written; --keep keeps the runs, --out writes the table)", file=sys.stderr)
        return 0
    write_text(out, table)
    print(f"(written to {out})", file=sys.stderr)
    return 0
