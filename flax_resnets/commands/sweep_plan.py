"""The sweep's plan: each cell's seconds estimated from a ``benchmark --json`` file of the device
(startup, compilation, and its images at its rates: measured, or a measured model's scaled down by
FLOPs, erring long where sharing was not measured), and the cells packed longest first into
``--parallel`` slots so that every cell started finishes within the budget.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path
from typing import Any

import ml_collections

from flax_resnets.commands import table1
from flax_resnets.data.sources import TFDS_SIZES, split_sizes
from flax_resnets.errors import InputError

STARTUP_SECONDS = 30.0  # a cell's process: imports, reading the data, placing it on the device
# Evaluation counts at most this many times the training rate. The benchmark evaluates at the
# training batch, without the validation images' crops: on a 2-core CPU it ran at 3.8 times the
# training rate where the trainer's validation passes (batch 256, augmented) ran at 0.9 times.
EVALUATION_OVER_TRAINING = 2.0
UNMEASURED_COMPILE_SECONDS = 60.0  # per program, where the rates file has no compile time
MOST_SEEDS = 64  # a cell's members: one program on one device


@dataclasses.dataclass(frozen=True)
class CellWork:
    """What one member of a cell trains and evaluates, from its config."""

    cell: str
    model: str
    batch: int
    dtype: str
    epochs: int
    train_images: int  # per epoch: its full batches
    validation_images: int  # per epoch, padded to whole evaluation batches
    test_images: int
    num_classes: int
    channels: int


def cell_work(cell: str, config: ml_collections.ConfigDict) -> CellWork:
    """``cell``'s work under ``config``, on its Table 1 dataset's split sizes."""
    dataset = table1.CELLS[cell][0]
    classes, channels, images, test = TFDS_SIZES[dataset]
    train, validation, test = split_sizes(images, test, config.validation_fraction, config.train_images)
    padded = lambda count: -(-count // config.eval_batch_size) * config.eval_batch_size  # noqa: E731
    return CellWork(
        cell=cell,
        model=config.model,
        batch=config.batch_size,
        dtype=config.dtype,
        epochs=config.num_epochs,
        train_images=train // config.batch_size * config.batch_size,
        validation_images=padded(validation) if validation else 0,
        test_images=padded(test),
        num_classes=classes,
        channels=3 if config.image_channels == 3 else channels,
    )


@functools.cache
def forward_gflops(model: str, num_classes: int, channels: int) -> float:
    """The model's forward GFLOPs per 32x32 image, from its shapes alone (nothing allocated)."""
    from flax_resnets.models import abstract_model
    from flax_resnets.models.flops import forward_gflops as gflops_of

    abstract = abstract_model(model, num_classes=num_classes, input_channels=channels)
    return gflops_of(abstract, (32, 32, channels))


@dataclasses.dataclass(frozen=True)
class Estimate:
    seconds: float
    basis: str  # what the training rate rests on


@dataclasses.dataclass
class Rates:
    """A benchmark's measured rates: one process's rows by (model, batch, members), the per-cell
    rates of K processes at once by (model, batch, members, K)."""

    source: str
    device: str
    dtypes: set[str]
    alone: dict[tuple[str, int, int], dict[str, Any]]
    shared: dict[tuple[str, int, int, int], float]

    @classmethod
    def read(cls, path: Path) -> Rates:
        """The rates of a ``benchmark --json`` file; one that is not such a file is refused."""
        fix = "give the file `python -m flax_resnets benchmark --json=FILE` wrote on this device"
        try:
            result = json.loads(Path(path).read_text())
            rows = result["rows"]
            alone = {(r["model"], r["batch"], r.get("seeds", 1)): r for r in rows}
            shared = {
                (r["model"], r["batch"], r["seeds"], r["cells"]): r["per cell"]
                for r in result.get("cells_rows", [])
            }
            float(next(iter(alone.values()))["train img/s"])
            from flax_resnets.models import require_models  # its own model names, or the file named

            require_models([model for model, _, _ in alone])
        except (OSError, ValueError, KeyError, TypeError, StopIteration) as error:
            raise InputError(f"--rates={path} holds no benchmark rates ({error!r}): {fix}.") from error
        measured = ("batch", "train img/s", "eval img/s", "compile s")
        numbers = [r[k] for r in rows for k in measured if r.get(k) is not None] + list(shared.values())
        if not all(type(n) in (int, float) and math.isfinite(n) and n > 0 for n in numbers):
            raise InputError(f"--rates={path}: its batches, rates and compile times must be numbers above 0.")
        for (model, batch, seeds), row in alone.items():
            shared.setdefault((model, batch, seeds, 1), row["train img/s"])
        device = f"{result.get('device', 'an unnamed device')} x{result.get('device_count', 1)}"
        return cls(str(path), device, {r.get("dtype", "float32") for r in rows}, alone, shared)

    def estimate(self, work: CellWork, seeds: int, cells: int) -> Estimate:
        """Seconds for ``work`` with ``seeds`` members while ``cells`` cells share the device."""
        if work.dtype not in self.dtypes:
            raise InputError(
                f"--rates={self.source} measured {', '.join(sorted(self.dtypes))}, not {work.dtype} "
                f"({work.cell}): measure {work.dtype} with `benchmark --dtype={work.dtype}`."
            )
        training, evaluation, basis = self.cell_rates(work, seeds, cells)
        compile_seconds = self.one_member(work)[0].get("compile s") or UNMEASURED_COMPILE_SECONDS
        images = seeds * work.epochs * work.train_images
        evaluated = seeds * (work.epochs * work.validation_images + work.test_images)
        seconds = STARTUP_SECONDS + 2 * compile_seconds + images / training + evaluated / evaluation
        return Estimate(seconds, basis)

    def cell_rates(self, work: CellWork, seeds: int, cells: int) -> tuple[float, float, str]:
        """The cell's training and evaluation images/s (its members' summed) and what they rest on:
        one member's rates times the sharing of ``seeds`` members among ``cells`` cells."""
        row, scale, basis = self.one_member(work)
        measured = self.shared.get((work.model, work.batch, seeds, cells))
        if measured:
            sharing = measured / (row["train img/s"] * scale)
            basis = f"measured: {work.model}, {seeds} seed(s), {cells} cell(s) at once"
        else:
            sharing, how = self.sharing(work, seeds, cells)
            basis = f"{basis}; {how}"
        training = row["train img/s"] * scale * sharing
        evaluation = min(row.get("eval img/s") or 0.0, EVALUATION_OVER_TRAINING * row["train img/s"])
        return training, (evaluation or row["train img/s"]) * scale * sharing, basis

    def one_member(self, work: CellWork) -> tuple[dict[str, Any], float, str]:
        """The measured one-member row the cell's rates come from, the factor to scale them by
        (1, or a measured model's FLOPs over the cell's model's, at most 1) and what it is."""
        if (work.model, work.batch, 1) in self.alone:
            return self.alone[work.model, work.batch, 1], 1.0, f"{work.model} measured"
        row = self.reference_row(work)
        ratio = forward_gflops(row["model"], work.num_classes, work.channels) / forward_gflops(
            work.model, work.num_classes, work.channels
        )
        scale = min(1.0, ratio)
        return row, scale, f"{row['model']}'s rate x {scale:.2f} (FLOPs)"

    def sharing(self, work: CellWork, seeds: int, cells: int) -> tuple[float, str]:
        """A cell's summed rate with ``seeds`` members among ``cells`` cells, over one member
        alone: measured on a model at this batch (its own first), or 1 / cells."""
        if seeds == 1 and cells == 1:
            return 1.0, "one seed alone"
        models = sorted({m for m, b, _, _ in self.shared if b == work.batch}, key=lambda m: m != work.model)
        for model in models:
            together = self.shared.get((model, work.batch, seeds, cells))
            alone = self.shared.get((model, work.batch, 1, 1))
            if together and alone:
                return together / alone, f"{seeds} seed(s) x {cells} cell(s) sharing as measured on {model}"
        return 1.0 / cells, f"{seeds} seed(s) x {cells} cell(s) assumed to cost as many runs (not measured)"

    def reference_row(self, work: CellWork) -> dict[str, Any]:
        """A measured one-member row at the cell's batch, to scale from."""
        rows = [
            row for (_, batch, seeds), row in sorted(self.alone.items()) if batch == work.batch and seeds == 1
        ]
        if not rows:
            measured = sorted({batch for _, batch, _ in self.alone})
            raise InputError(
                f"--rates={self.source} has no one-seed rate at batch {work.batch} ({work.cell}; it measured "
                f"batches {measured}): measure it with `benchmark --batch_sizes={work.batch}`."
            )
        return rows[0]


@dataclasses.dataclass(frozen=True)
class PlannedCell:
    cell: str
    seeds: int
    slot: int
    start: float
    end: float
    basis: str


@dataclasses.dataclass
class Plan:
    """Cells in the order they start, those left out with the reason, and what was changed."""

    planned: list[PlannedCell]
    left_out: list[tuple[str, str]]
    notes: list[str]
    cells_at_once: int

    def end(self) -> float:
        return max((p.end for p in self.planned), default=0.0)

    def rank(self) -> tuple[int, int, int, float]:
        """Better plans rank higher: more cells, more seeds, the fewest of a cell more, ending sooner."""
        seeds = [p.seeds for p in self.planned]
        return len(seeds), sum(seeds), min(seeds, default=0), -self.end()

    def seeds(self, cell: str) -> int:
        return next(p.seeds for p in self.planned if p.cell == cell)

    def seconds(self, cell: str) -> float:
        return next(p.end - p.start for p in self.planned if p.cell == cell)

    def lines(self, budget: float, device: str) -> list[str]:
        """The plan as printed: one line per cell, then the cells left out and why."""
        limit = f"for {budget:.0f} s" if math.isfinite(budget) else "with no time limit"
        lines = [f"plan {limit} on {device}, {self.cells_at_once} cell(s) at once (estimates):"]
        for p in self.planned:
            lines.append(
                f"  {p.cell}: {p.seeds} seed(s), slot {p.slot + 1}, {p.start:.0f}-{p.end:.0f} s ({p.basis})"
            )
        lines += [f"  {note}" for note in self.notes]
        lines += [f"  {cell}: left out, {reason}" for cell, reason in self.left_out]
        return [*lines, f"  estimated end {self.end():.0f} s ({limit}); {len(self.planned)} cell(s) planned"]


def cost_lines(works: list[CellWork], rates: Rates, num_seeds: int, budget: float) -> list[str]:
    """Every cell's device time with ``num_seeds`` seeds, one cell at a time, and in all; and how
    many calls of ``budget`` seconds that is at least (a cell stopped by a call's end resumes in the
    next, starting and compiling again)."""
    seconds = {work.cell: rates.estimate(work, num_seeds, 1).seconds for work in works}
    total = sum(seconds.values())
    lines = [f"every cell with {num_seeds} seed(s), one at a time (estimates on {rates.device}):"]
    lines += [f"  {cell}: {cell_seconds:,.0f} s" for cell, cell_seconds in seconds.items()]
    calls = f": at least {math.ceil(total / budget)} call(s) of {budget:.0f} s" if budget < math.inf else ""
    return [*lines, f"  in all {len(seconds)} cell(s), {total:,.0f} s ({total / 3600:.1f} h){calls}"]


def make_plan(works: list[CellWork], rates: Rates, num_seeds: int, parallel: int, budget: float) -> Plan:
    """The best of the plans with 1 to ``parallel`` cells at once, a cell's seeds capped at 1 to
    ``num_seeds`` (``Plan.rank``: seeds are lowered before a cell is left out). A lower cap is packed
    only where it changes the plan (below the most seeds the last plan gave) and could outrank the
    best: at most ``parallel`` x ``num_seeds`` packs of ``num_seeds`` estimates a cell, under two
    seconds for Table 1 at ``MOST_SEEDS`` and 15 cells at once (most searches end in a few packs)."""
    if num_seeds > MOST_SEEDS:
        raise InputError(
            f"--num_seeds={num_seeds}: a cell trains at most {MOST_SEEDS} seeds, as one program on one "
            "device; train more seeds as further runs (--config.seed)."
        )
    best = None
    for cells in range(1, max(min(parallel, len(works)), 1) + 1):
        most = num_seeds
        while most > 0 and not (best and (len(works), len(works) * most) < best.rank()[:2]):
            plan = pack(works, rates, num_seeds, most, cells, budget)
            best = plan if best is None else max(best, plan, key=Plan.rank)
            most = min(most, max((p.seeds for p in plan.planned), default=0)) - 1
    return best


def pack(works: list[CellWork], rates: Rates, num_seeds: int, most: int, cells: int, budget: float) -> Plan:
    """``cells`` slots, longest cell first into the slot free earliest, with the most seeds (``most``
    down to 1) that end within ``budget``; a cell that fits with none is left out."""
    wanted = {work.cell: rates.estimate(work, num_seeds, cells) for work in works}
    free = [0.0] * cells
    plan = Plan([], [], [], cells)
    for work in sorted(works, key=lambda w: -wanted[w.cell].seconds):
        slot = min(range(cells), key=free.__getitem__)
        for seeds in range(most, 0, -1):
            estimate = rates.estimate(work, seeds, cells)
            if free[slot] + estimate.seconds <= budget:
                plan.planned.append(
                    PlannedCell(
                        work.cell, seeds, slot, free[slot], free[slot] + estimate.seconds, estimate.basis
                    )
                )
                if seeds < num_seeds:
                    plan.notes.append(
                        f"{work.cell}: {num_seeds} seeds lowered to {seeds}: with {num_seeds} it would "
                        f"end at {free[slot] + wanted[work.cell].seconds:.0f} s"
                    )
                free[slot] += estimate.seconds
                break
        else:
            plan.left_out.append(
                (
                    work.cell,
                    f"needs {estimate.seconds:.0f} s with 1 seed and its slot is free from "
                    f"{free[slot]:.0f} s of {budget:.0f}",
                )
            )
    plan.planned.sort(key=lambda p: (p.start, p.slot))
    return plan
