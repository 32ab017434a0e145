"""``python -m flax_resnets sweep``: train a list of Table 1 cells within a time budget, keep what finished.

    python -m flax_resnets sweep --cells=cifar10_resnet18,fashion_mnist_alexnet \\
        --data cifar10=/data/cifar10.npz fashion_mnist=/data/fashion_mnist.npz \\
        --workdir_root=runs/sweep --budget_seconds=3600 --tar=out/table1_runs.tar.gz \\
        -- --config.input_pipeline=device

Each cell (``<dataset>_<model>``) runs the trainer (``python -m flax_resnets train``, what
``main.py`` runs) with the paper's recipe for that cell (``flax_resnets.config.get_config``, the
same as ``configs/<cell>.py``), the data given for its dataset (an exported ``.npz`` or an image
folder; TFDS otherwise), and the ``--config.*`` flags after ``--``, in its own process with a
log in the workdir root. A cell still running when the budget ends is stopped with SIGTERM,
which makes the trainer save a checkpoint and exit: the same sweep command later resumes it.
Finished cells are kept as small files in ``RESULTS/runs/<dataset>_<model>/`` with the Table 1
they fill (``python -m flax_resnets table1``), and ``--tar`` packs them, the table and the logs
into one file to carry elsewhere.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from flax_resnets import config
from flax_resnets.cli import command_parser
from flax_resnets.commands import table1
from flax_resnets.data.arrays import UnreadableArraysError, load_arrays
from flax_resnets.errors import InputError

CELL_CONFIG = Path(config.__file__)  # its get_config(cell): the paper's recipe for a cell
STOP_GRACE_SECONDS = 60  # for the trainer to save its checkpoint after SIGTERM
POLL_SECONDS = 1.0  # how often a running cell's budget is looked at


class Budget:
    """The seconds left of the sweep's time budget, on the monotonic clock."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


def data_flags(key: str, path: Path) -> list[str]:
    """The config flags that read ``path`` for the cells of dataset ``key``: an exported file names
    its dataset, a folder is one. A file exported from another of the paper's datasets, or with
    images of other channels than ``key``'s, is refused."""
    if path.suffix != ".npz":
        return ["--config.dataset=image_folder", f"--config.data_dir={path}"]
    try:
        source = load_arrays(path, only=("dataset", "train"))
    except UnreadableArraysError as error:
        raise InputError(f"--data {key}={path}: {error}; export it again.") from error
    channels = source["train"].images.shape[-1]
    expected = table1.SIGNATURES[key][1]
    if source["dataset"] not in (key, "image_folder") or channels != expected:
        raise InputError(
            f"--data {key}={path}: the file holds {source['dataset']} with {channels}-channel images, "
            f"not {key} ({expected} channel(s)): give each dataset its own file."
        )
    return [f"--config.dataset={source['dataset']}", f"--config.data_dir={path}"]


def run_cell(command: list[str], log: Path, budget: Budget) -> tuple[int | None, float]:
    """Run ``command`` with its output in ``log`` until it ends or ``budget`` runs out; (exit
    status or None when the budget stopped it, wall seconds)."""
    started = time.monotonic()
    with open(log, "a") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        while (remaining := budget.remaining()) > 0:
            try:
                return process.wait(timeout=min(remaining, POLL_SECONDS)), time.monotonic() - started
            except subprocess.TimeoutExpired:
                pass
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return None, time.monotonic() - started


def has_checkpoint(workdir: Path) -> bool:
    """Whether a cell's workdir holds a saved step to resume from."""
    checkpoints = workdir / "checkpoints"
    return checkpoints.is_dir() and any(p.name.isdigit() for p in checkpoints.iterdir())


def stopped_message(workdir: Path, seconds: float) -> str:
    """What a cell stopped by the budget left: a checkpoint to resume from, or nothing yet."""
    if has_checkpoint(workdir):
        return f"stopped by the budget after {seconds:.0f} s; the same command resumes it"
    return (
        f"stopped by the budget after {seconds:.0f} s, before its first checkpoint: "
        "nothing to resume, it will start again"
    )


def last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].split("\r")[-1] if lines else "(no output)"


def pack(tar_path: Path, results: Path, logs: list[Path]) -> None:
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(results, arcname=results.name)
        for log in logs:
            tar.add(log, arcname=f"logs/{log.name}")


def main(argv: list[str]) -> int:
    parser = command_parser("sweep", __doc__.splitlines()[0])
    parser.add_argument(
        "--cells", required=True, help="comma-separated <dataset>_<model>, e.g. cifar10_resnet18"
    )
    parser.add_argument(
        "--data", nargs="*", default=[], help="DATASET=PATH (.npz or image folder) per dataset"
    )
    parser.add_argument("--workdir_root", type=Path, required=True, help="one workdir per cell inside it")
    parser.add_argument(
        "--budget_seconds", type=float, required=True, help="stop cells still running after it"
    )
    parser.add_argument("--results", type=Path, default=Path("results"), help="where finished cells are kept")
    parser.add_argument("--tar", type=Path, help="also pack the kept runs, the table and the logs here")
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    overrides = argv[split + 1 :]
    budget = Budget(args.budget_seconds)

    cells = args.cells.split(",")
    unknown = [cell for cell in cells if cell not in table1.CELLS]
    if unknown:
        raise InputError(
            f"no Table 1 cell {', '.join(unknown)}: name cells <dataset>_<model>, e.g. cifar10_resnet18, "
            f"with a dataset of {', '.join(table1.DATASETS)} and a model of {', '.join(table1.TABLE_MODELS)}."
        )
    data = {}
    for item in args.data:
        dataset, _, path = item.partition("=")
        if dataset not in table1.DATASETS or not Path(path).exists():
            raise InputError(
                f"--data {item!r}: expected DATASET=PATH with DATASET in {', '.join(table1.DATASETS)} "
                "and PATH an existing .npz file or image folder."
            )
        data[dataset] = data_flags(dataset, Path(path).absolute())
    bad = [flag for flag in overrides if not flag.startswith("--config.")]
    if bad:
        raise InputError(f"only --config.FIELD=VALUE flags may follow --, got {' '.join(bad)}.")

    if args.workdir_root.exists() and not args.workdir_root.is_dir():
        raise InputError(
            f"--workdir_root={args.workdir_root} is a file: pass a folder for the cells' workdirs."
        )
    args.workdir_root.mkdir(parents=True, exist_ok=True)
    logs, failed = [], []
    for cell in cells:
        dataset = table1.CELLS[cell][0]
        workdir, log = args.workdir_root / cell, args.workdir_root / f"{cell}.log"
        command = [
            sys.executable,
            "-m",
            "flax_resnets",
            "train",
            f"--config={CELL_CONFIG}:{cell}",
            f"--workdir={workdir.absolute()}",
            *data.get(dataset, []),
            *overrides,
        ]
        if budget.remaining() <= 0:
            print(f"{cell}: not started, the budget is spent", flush=True)
            continue
        logs.append(log)
        status, seconds = run_cell(command, log, budget)
        if status is None:
            print(f"{cell}: {stopped_message(workdir, seconds)}", flush=True)
            continue
        try:
            if status != 0:
                raise RuntimeError(f"exit {status}")
            print(
                f"{cell}: finished in {seconds:.0f} s, kept in {table1.keep(workdir, args.results)}",
                flush=True,
            )
        except (RuntimeError, ValueError) as error:
            failed.append(cell)
            print(f"{cell}: {error} after {seconds:.0f} s: {last_line(log)}", flush=True)

    table1.main([f"--results={args.results}"])
    if args.tar:
        pack(args.tar, args.results, logs)
        print(f"packed {args.results} and {len(logs)} log(s) into {args.tar}", flush=True)
    return 1 if failed else 0

