"""``python -m flax_resnets sweep``: train Table 1's cells (within a time budget), keep what finished.

    python -m flax_resnets sweep --cells=table1 --num_seeds=3 --dry_run
    python -m flax_resnets sweep --cells=table1 --num_seeds=3 --data cifar10=/data/cifar10.npz

Cells of a dataset neither given (``--data``) nor readable through TFDS are left out, saying why. Each
cell trains in its own process, ``--parallel`` at once; at the budget's end (or SIGTERM, Ctrl-C) they
save a checkpoint and stop, and the same command resumes them. ``--rates`` plans first so that every
cell started finishes (``--dry_run``: plan and cost only, from the H100's rates without ``--rates``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from flax_resnets import checks, config
from flax_resnets.cli import (
    command_parser,
    output_file,
    output_folder,
    parse_command,
    positive_int,
    user_path,
)
from flax_resnets.commands import table1
from flax_resnets.commands.sweep_plan import Plan, Rates, cell_work, cost_lines, make_plan
from flax_resnets.data.arrays import UnreadableArraysError, load_arrays
from flax_resnets.data.sources import TFDS_SIZES, is_array_file, tfds_builder
from flax_resnets.errors import InputError
from flax_resnets.files import atomic_write
from flax_resnets.interrupts import STOP_WITH_PARENT, StopRequests
from flax_resnets.runs.workdir import checkpoint_steps, read_run

CELL_CONFIG = Path(config.__file__)  # its get_config(cell): the paper's recipe for a cell
# What a dry run plans from where no --rates is given: one H100's measured rates (in a clone).
COMMITTED_RATES = Path(__file__).parents[2] / "results" / "gpu_h100" / "benchmark_float32.json"
STOP_GRACE_SECONDS = 60  # for the trainer to save its checkpoint after SIGTERM
POLL_SECONDS = 1.0  # how often running cells and the budget are looked at
MEMORY_IN_USE = 0.9  # of the accelerator's memory, shared out between parallel cells


class Budget:
    """The seconds left of the sweep's time budget, on the monotonic clock."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


def data_flags(key: str, path: Path) -> list[str]:
    """The config flags that read ``path`` for dataset ``key``'s cells; a file exported from another
    dataset, or with other channels than ``key``'s, is refused."""
    if not is_array_file(path):
        return ["--config.dataset=image_folder", f"--config.data_dir={path}"]
    try:
        source = load_arrays(path, only=("dataset", "train"))
    except UnreadableArraysError as error:
        raise InputError(f"--data {key}={path}: {error}; export it again.") from error
    channels = source["train"].images.shape[-1]
    expected = TFDS_SIZES[key][1]
    if source["dataset"] not in (key, "image_folder") or channels != expected:
        raise InputError(
            f"--data {key}={path}: the file holds {source['dataset']} with {channels}-channel images, "
            f"not {key} ({expected} channel(s)): give each dataset its own file."
        )
    return [f"--config.dataset={source['dataset']}", f"--config.data_dir={path}"]


@dataclasses.dataclass
class CellProcess:
    """A cell's trainer, running in its own process with its output in its log."""

    cell: str
    workdir: Path
    log: Path
    process: subprocess.Popen
    started: float

    def seconds(self) -> float:
        return time.monotonic() - self.started


SWEEP_STOPS = (
    "{signal}: stopping the cells (each saves a checkpoint to resume from) and keeping the finished "
    "ones. Ctrl-C again stops the sweep at once; its cells still save and stop."
)


def start_cell(cell: str, workdir: Path, log: Path, command: list[str], env: dict[str, str]) -> CellProcess:
    """The cell's trainer in a session of its own (a terminal's Ctrl-C goes to the sweep alone);
    ``cell_environment`` makes it stop (save and exit) if the sweep dies, however."""
    with open(log, "a") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return CellProcess(cell, workdir, log, process, time.monotonic())


def stop_cells(running: list[CellProcess]) -> None:
    """SIGTERM to each (the trainer saves a checkpoint and exits), SIGKILL to any still running
    after the grace period."""
    for cell in running:
        cell.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for cell in running:
        try:
            cell.process.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            cell.process.kill()
            cell.process.wait()


def cell_environment(parallel: int) -> dict[str, str]:
    """A cell's environment: it stops when the sweep ends (``STOP_WITH_PARENT``), and ``parallel``
    cells each take their share of the accelerator's memory (unless the caller set one)."""
    env = dict(os.environ)
    env[STOP_WITH_PARENT] = str(os.getpid())  # the cell stops if the sweep dies (kill -9 included)
    if parallel > 1 and "XLA_PYTHON_CLIENT_MEM_FRACTION" not in env:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{MEMORY_IN_USE / parallel:.3f}"
    return env


def stopped_message(workdir: Path, seconds: float, reason: str = "the budget") -> str:
    """What a cell stopped (by the budget or a signal) left: a checkpoint to resume from, or none."""
    if checkpoint_steps(workdir / "checkpoints"):
        return f"stopped by {reason} after {seconds:.0f} s; the same command resumes it"
    return (
        f"stopped by {reason} after {seconds:.0f} s, before its first checkpoint: "
        "nothing to resume, it will start again"
    )


def report_finished(finished: CellProcess, results: Path) -> bool:
    """Say how a cell's process ended and keep its run if it finished; whether it did."""
    status, seconds = finished.process.returncode, finished.seconds()
    try:
        if status != 0:
            raise RuntimeError(f"exit {status}")
        kept = table1.keep(finished.workdir, results)
    except (RuntimeError, ValueError) as error:
        lines = [line for line in finished.log.read_text(errors="replace").splitlines() if line.strip()]
        last = lines[-1].split("\r")[-1] if lines else "(no output)"
        print(f"{finished.cell}: {error} after {seconds:.0f} s: {last}", flush=True)
        return False
    print(f"{finished.cell}: finished in {seconds:.0f} s, kept in {kept}", flush=True)
    return True


def pack(tar_path: Path, results: Path, logs: list[Path]) -> None:
    """The kept runs, the table and the logs in one file, written whole or not at all."""

    def write(file: Any) -> None:
        with tarfile.open(fileobj=file, mode="w:gz") as tar:
            tar.add(results, arcname=results.name)
            for log in logs:
                tar.add(log, arcname=f"logs/{log.name}")

    atomic_write(tar_path, write, binary=True)


def main(argv: list[str]) -> int:
    args, data, flags = parse_arguments(argv)
    if not args.dry_run:
        args.cells = [cell for cell in args.cells if not kept_if_finished(cell, args)]
    for line in without_data(args, data, flags):
        print(line, flush=True)
    plan = None
    if args.rates:
        plan = plan_cells(args, flags)
        if args.dry_run:
            return 0
    budget = Budget(args.budget_seconds)
    args.workdir_root.mkdir(parents=True, exist_ok=True)
    with StopRequests(SWEEP_STOPS, across_hosts=False) as stop:
        logs, failed = run_cells(args, data, flags, budget, stop, plan)
    table1.main([f"--results={args.results}"])
    if args.tar:
        pack(args.tar, args.results, logs)
        print(f"packed {args.results} and {len(logs)} log(s) into {args.tar}", flush=True)
    if stop.received:
        print(
            f"Stopped on request; the finished cells are kept in {args.results.resolve()}: "
            "run the same command to resume the others.",
            file=sys.stderr,
        )
        return stop.exit_status()
    return 1 if failed else 0


def parse_arguments(argv: list[str]) -> tuple[Any, dict[str, list[str]], list[str]]:
    """The sweep's arguments (``cells`` a list), each dataset's data flags, and the flags every
    cell's training gets (the ``--config.FIELD=VALUE`` after ``--``); anything wrong refused."""
    parser = command_parser("sweep", __doc__)
    add = parser.add_argument
    add("--cells", required=True, help="comma-separated: cells (cifar10_resnet18), datasets, or table1")
    add("--data", nargs="*", default=[], help="DATASET=PATH (.npz or image folder) per dataset")
    add("--workdir_root", type=output_folder, default="runs/sweep", help="one workdir per cell inside it")
    add("--budget_seconds", type=float, default=math.inf, help="stop cells still running after it")
    add("--results", type=output_folder, default=Path("results"), help="where finished cells are kept")
    add("--tar", type=output_file, help="also pack the kept runs, the table and the logs here")
    add("--parallel", type=positive_int, default=1, help="cells trained at once, sharing the accelerator")
    add("--num_seeds", type=positive_int, default=1, help="seeds per cell, trained as one (config.num_seeds)")
    add("--rates", type=user_path, help="a `benchmark --json` file of this device: plan the cells first")
    add("--dry_run", action="store_true", help="print the plan and the cost of every cell, and exit")
    args, overrides = parse_command(parser, argv)
    if not args.budget_seconds > 0:
        raise InputError(f"--budget_seconds must be a positive number of seconds, got {args.budget_seconds}.")
    if args.dry_run and not args.rates:
        if not COMMITTED_RATES.exists():
            raise InputError("--dry_run plans from measured rates: give --rates=FILE (a benchmark --json).")
        args.rates = COMMITTED_RATES
    args.cells = config.named_cells(args.cells)
    data = {}
    for item in args.data:
        dataset, _, path = item.partition("=")
        if dataset not in table1.DATASETS or not Path(path).exists():
            raise InputError(
                f"--data {item!r}: expected DATASET=PATH with DATASET in {', '.join(table1.DATASETS)} "
                "and PATH an existing .npz file or image folder."
            )
        data[dataset] = data_flags(dataset, Path(path).absolute())
    for cell in args.cells:  # a bad field or value (batch_size=0), refused now
        checks.validate_config(checks.with_overrides(config.cell_config(cell), overrides))
    return args, data, overrides


def without_data(args: Any, data: dict[str, list[str]], flags: list[str]) -> list[str]:
    """Leave out of ``args.cells`` the cells of each dataset that is neither in ``data`` nor
    readable through TFDS here (as its cells' config says: data_dir, download); a line each saying
    why and how to give it."""
    lines = []
    for dataset in dict.fromkeys(table1.CELLS[cell][0] for cell in args.cells):
        if dataset in data:
            continue
        recipe = checks.with_overrides(config.cell_config(f"{dataset}_resnet18"), flags)
        try:
            tfds_builder(dataset, data_dir=recipe.data_dir, download=recipe.download)
        except InputError as error:
            cells = [cell for cell in args.cells if table1.CELLS[cell][0] == dataset]
            args.cells = [cell for cell in args.cells if cell not in cells]
            lines.append(
                f"{', '.join(cells)}: left out, no data: {error} Or give --data {dataset}=FILE.npz "
                "(`python -m flax_resnets data export` of it) or an image folder."
            )
    return lines


def kept_if_finished(cell: str, args: Any) -> bool:
    """Whether ``cell``'s workdir already holds its finished run (an earlier sweep's), kept now
    instead of trained again."""
    workdir = args.workdir_root / cell
    try:
        read_run(workdir, finished=True)
    except (ValueError, KeyError, TypeError):  # InputError included
        return False
    print(f"{cell}: finished by an earlier sweep, kept in {table1.keep(workdir, args.results)}", flush=True)
    return True


def plan_cells(args: Any, flags: list[str]) -> Plan:
    """The plan of ``args.rates``, printed; ``args.cells`` become the cells it starts, in order, and
    ``args.parallel`` its cells at once."""
    rates = Rates.read(args.rates)
    works = [cell_work(cell, checks.with_overrides(config.cell_config(cell), flags)) for cell in args.cells]
    plan = make_plan(works, rates, args.num_seeds, args.parallel, args.budget_seconds)
    lines = plan.lines(args.budget_seconds, rates.device)
    if args.rates == COMMITTED_RATES:
        lines.insert(0, f"rates: {COMMITTED_RATES} (one H100): --rates=FILE plans from your device's")
    if args.dry_run:
        lines += cost_lines(works, rates, args.num_seeds, args.budget_seconds)
    print("\n".join(lines), flush=True)
    args.cells = [planned.cell for planned in plan.planned]
    args.parallel = plan.cells_at_once
    return plan


def run_cells(
    args: Any,
    data: dict[str, list[str]],
    flags: list[str],
    budget: Budget,
    stop: StopRequests,
    plan: Plan | None = None,
) -> tuple[list[Path], list[str]]:
    """Train ``args.cells``, ``args.parallel`` at a time (a plan's seeds; none started past its
    estimate), until done, the budget or a stop; the logs written and the cells that failed."""
    pending = list(args.cells)
    running: list[CellProcess] = []
    logs, failed = [], []
    env = cell_environment(args.parallel)
    while pending or running:
        while pending and len(running) < args.parallel and budget.remaining() > 0 and not stop.received:
            cell = pending.pop(0)
            seeds = plan.seeds(cell) if plan else args.num_seeds
            if plan and plan.seconds(cell) > budget.remaining():
                print(
                    f"{cell}: not started, its estimated {plan.seconds(cell):.0f} s exceed the "
                    f"{budget.remaining():.0f} s left of the budget",
                    flush=True,
                )
                continue
            workdir, log = args.workdir_root / cell, args.workdir_root / f"{cell}.log"
            command = [
                sys.executable,
                "-m",
                "flax_resnets",
                "train",
                f"--config={CELL_CONFIG}:{cell}",
                f"--workdir={workdir.absolute()}",
                *data.get(table1.CELLS[cell][0], []),
                *([f"--config.num_seeds={seeds}"] if seeds > 1 else []),
                *flags,
            ]
            logs.append(log)
            running.append(start_cell(cell, workdir, log, command, env))
        for finished in [cell for cell in running if cell.process.poll() is not None]:
            running.remove(finished)
            if not report_finished(finished, args.results):
                failed.append(finished.cell)
        if stop.received or budget.remaining() <= 0:
            reason = "the budget"
            if stop.received:
                reason = f"the sweep's {signal.Signals(stop.received).name}"
            stop_cells(running)
            for stopped in running:
                message = stopped_message(stopped.workdir, stopped.seconds(), reason)
                print(f"{stopped.cell}: {message}", flush=True)
            for cell in pending:
                print(f"{cell}: not started, stopped by {reason}", flush=True)
            break
        if running:
            time.sleep(POLL_SECONDS)
    return logs, failed
