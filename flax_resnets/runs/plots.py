"""The two pictures a run leaves in its workdir, drawn off screen: ``curves.png`` (training and
validation loss and accuracy per epoch, beside the paper's logged curves for a Table 1 cell's
recipe) and ``confusion.png`` (the test confusion matrix, rows as fractions of their class).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from flax_resnets.files import atomic_write
from flax_resnets.runs.paper import paper_curves
from flax_resnets.runs.summary import data_label
from flax_resnets.runs.workdir import read_run

CURVES = "curves.png"
CONFUSION = "confusion.png"


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no display, no global state

    return Figure(figsize=(width, height), layout="constrained")


def save(figure, path: Path) -> Path:
    """Write the figure as a PNG. Class names in a script the font lacks (CJK, say) are drawn as
    boxes, without matplotlib's warning for every missing glyph."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=110), binary=True)
    return path


def plot_curves(records: list[dict], title: str, path: Path, paper_cell: str = "") -> Path:
    """Loss and accuracy per epoch, training and validation (several seeds: their mean, and a band of
    their range), beside the paper's logged run of ``paper_cell``, dashed."""
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(9, 3.6)
    epochs = [r["epoch"] for r in records]
    num_seeds = len(records[0].get("seeds", [])) if records else 0
    paper = paper_curves(paper_cell) if paper_cell else None
    for axes, metric in zip(figure.subplots(1, 2), ("loss", "accuracy"), strict=True):
        for split, style in (("train", "-o"), ("val", "-s")):
            field = f"{split}_{metric}"
            values = [r.get(field) for r in records]
            name = "training" if split == "train" else "validation"
            if any(v is not None for v in values):
                label = f"{name}, mean of {num_seeds} seeds" if num_seeds > 1 else name
                (line,) = axes.plot(
                    epochs, [np.nan if v is None else v for v in values], style, markersize=3, label=label
                )
                if num_seeds > 1:
                    spread = np.array([[m[field] for m in r["seeds"]] for r in records], dtype=float)
                    axes.fill_between(epochs, spread.min(1), spread.max(1), color=line.get_color(), alpha=0.2)
            if paper is not None:
                colour = "C0" if split == "train" else "C1"
                axes.plot(paper["epoch"], paper[field], "--", color=colour, alpha=0.6, label=f"paper, {name}")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    if paper is not None:
        title = f"{title} (dashed: the paper's logged {paper_cell})"
    figure.suptitle(title)
    return save(figure, path)


def plot_confusion(confusion: list[list[int]], class_names: list[str], title: str, path: Path) -> Path:
    """Rows: true classes, columns: predictions, as fractions of each row; counts written in the
    cells of small matrices, class names on the axes up to 20 classes."""
    counts = np.asarray(confusion, np.int64)
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = min(4 + 0.45 * len(counts), 14)
    figure = new_figure(size + 1, size)
    axes = figure.subplots()
    image = axes.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046, label="fraction of the true class")
    if len(counts) <= 20:
        ticks = np.arange(len(counts))
        axes.set_xticks(ticks, class_names, rotation=60, ha="right")
        axes.set_yticks(ticks, class_names)
        for (row, column), count in np.ndenumerate(counts):
            color = "white" if fractions[row, column] > 0.5 else "black"
            axes.text(column, row, str(count), ha="center", va="center", fontsize=7, color=color)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    return save(figure, path)


def write_plots(workdir: Path, paper_cell: str | None = None) -> list[Path]:
    """Draw whichever of the two pictures the workdir's files allow (curves beside ``paper_cell``'s,
    by default the run's own); their paths."""
    run = read_run(workdir)
    workdir, config = run.folder, run.config
    name = f"{config['model']} on {data_label(config)}"
    written = []
    if run.metrics:
        cell = config.get("paper_cell", "") if paper_cell is None else paper_cell
        written.append(plot_curves(run.metrics, name, workdir / CURVES, cell))
    report = run.evaluation or {}
    if "confusion" in report:
        accuracy, step = report["test_accuracy"], report["checkpoint_step"]
        title = f"{name}: test accuracy {accuracy:.2%} (checkpoint at step {step})"
        if len(report.get("seeds", [])) > 1:
            spread = f"+- {report['test_accuracy_std']:.2%}"
            title = f"{name}: test accuracy {accuracy:.2%} {spread}, {len(report['seeds'])} seeds summed"
        written.append(plot_confusion(report["confusion"], report["class_names"], title, workdir / CONFUSION))
    return written


def plot_degradation(runs: dict[str, dict], title: str, path: Path) -> Path:
    """He et al.'s Fig. 6: training error dashed, test error solid, per epoch; plain networks on
    the left, residual ones on the right, one colour per depth."""
    figure = new_figure(10, 4)
    panels = dict(zip(("plain", "resnet"), figure.subplots(1, 2, sharey=True), strict=True))
    depths = sorted({int("".join(filter(str.isdigit, name))) for name in runs})
    colours = {depth: f"C{index}" for index, depth in enumerate(depths)}
    for name, run in runs.items():
        family = "plain" if name.startswith("plain") else "resnet"
        depth = int("".join(filter(str.isdigit, name)))
        axes = panels[family]
        # Markers: a run of one epoch is a point, not an invisible line.
        epochs, colour = run["epoch"], colours[depth]
        axes.plot(epochs, np.multiply(run["train_error"], 100), "--o", ms=3, color=colour)
        axes.plot(epochs, np.multiply(run["test_error"], 100), "-o", ms=3, color=colour, label=name)
    for family, axes in panels.items():
        axes.set_title("plain networks" if family == "plain" else "residual networks")
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        axes.legend(title="solid: test, dashed: training")
    panels["plain"].set_ylabel("error (%)")
    figure.suptitle(title)
    return save(figure, path)


def plot_landscapes(surfaces: list[dict], path: Path) -> Path:
    """Per surface: a contour plot above a 3-D surface (Li et al.'s Fig. 5). The loss far out is
    hundreds of times the centre's: contours up to 10 times it, spaced logarithmically, and the
    surface on a logarithmic axis, whole (a surface cut at a cap shows saw-teeth)."""
    figure = new_figure(5 * len(surfaces), 9)
    for column, surface in enumerate(surfaces):
        x, y = np.meshgrid(surface["x"], surface["y"], indexing="ij")
        loss = np.maximum(np.asarray(surface["loss"]), 1e-6)
        centre = loss[len(surface["x"]) // 2, len(surface["y"]) // 2]
        cap = min(loss.max(), 10 * centre)
        contour = figure.add_subplot(2, len(surfaces), column + 1)
        levels = np.geomspace(loss.min(), cap, 15)
        lines = contour.contour(x, y, np.minimum(loss, cap), levels=levels, cmap="viridis")
        contour.clabel(lines, fontsize=6, fmt="%.2g")
        contour.plot(0, 0, "r+")
        contour.set_title(surface["name"])
        contour.set_aspect("equal")
        relief = figure.add_subplot(2, len(surfaces), len(surfaces) + column + 1, projection="3d")
        relief.plot_surface(x, y, np.log10(loss), cmap="viridis", linewidth=0)
        ticks = np.arange(np.floor(np.log10(loss.min())), np.ceil(np.log10(loss.max())) + 1)
        relief.set_zticks(ticks, [f"{10**tick:g}" for tick in ticks])
        relief.set_zlabel("training loss (log scale)")
        relief.set_box_aspect(None, zoom=0.85)  # room for the axis labels inside the figure
    return save(figure, path)
