"""What a run leaves for people and tools: metrics.jsonl, TensorBoard summaries, run.json, plots.

``metrics.jsonl`` is rewritten from the checkpointed history when a run resumes, so after a
crash it holds exactly one line per finished epoch, as if the run had never stopped.
``run.json`` says where and how a finished run was made (device, versions, commit, data, time),
so that its numbers can be trusted and compared (``flax_resnets.table1``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from flax_resnets.files import write_text

# Fields of an epoch record that measure the machine, not the training: they differ between
# two runs of the same config, everything else must not.
TIMING_FIELDS = ("seconds", "images_per_second")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


class EpochReport:
    """Appends one record per epoch to ``metrics.jsonl`` and to TensorBoard (``tensorboard/``)."""

    def __init__(self, workdir: Path, history: list[dict]):
        SummaryWriter = summary_writer_class()  # noqa: N806

        self.metrics_path = Path(workdir) / "metrics.jsonl"
        write_text(self.metrics_path, "".join(json.dumps(record) + "\n" for record in history))
        self.writer = SummaryWriter(str(Path(workdir) / "tensorboard"))

    def write(self, record: dict) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for name, value in record.items():
            if name not in ("epoch", "step") and isinstance(value, (int, float)):
                self.writer.add_scalar(name, value, global_step=record["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> EpochReport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def source_commit() -> str:
    """The project's git commit ("-dirty" with uncommitted changes), $FLAX_RESNETS_COMMIT where
    the source travelled without its .git (a lent GPU machine), else "unknown"."""
    if os.environ.get("FLAX_RESNETS_COMMIT"):
        return os.environ["FLAX_RESNETS_COMMIT"]
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if changes else "")


def provenance() -> dict[str, Any]:
    """The machine, the library versions and the commit that produced a result."""
    import flax
    import jax
    import jaxlib
    import optax
    import orbax.checkpoint

    return {
        "device": jax.devices()[0].device_kind,
        "platform": jax.default_backend(),
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
            "orbax-checkpoint": orbax.checkpoint.__version__,
        },
        "commit": source_commit(),
    }


def run_record(config: Any, dataset: Any, history: list[dict]) -> dict[str, Any]:
    """``run.json`` of a finished run: provenance, the data it read, how long it trained."""
    return {
        **provenance(),
        "model": config.model,
        "dtype": config.dtype,
        "epochs": len(history),
        "wall_seconds": sum(record["seconds"] for record in history),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": {
            "dataset": config.dataset,
            "data_dir": config.data_dir,
            "class_names": list(dataset.class_names),
            "channels": dataset.channels,
            "mean": list(dataset.mean),
            "std": list(dataset.std),
            "train": len(dataset.train),
            "validation": len(dataset.validation),
            "test": len(dataset.test),
        },
    }


def summary_writer_class() -> type:
    """tensorboardX's SummaryWriter, imported without PyTorch: tensorboardX imports it, when
    installed, only to accept torch tensors (we write floats), and that costs ~2 s a run."""
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter
    else:
        sys.modules["torch"] = None  # makes tensorboardX's guarded `import torch` fail fast
        try:
            from tensorboardX import SummaryWriter
        finally:
            del sys.modules["torch"]
    return SummaryWriter


def run_summary(workdir: Path) -> dict[str, Any]:
    """One row about a finished run: what it trained, how fast, how well."""
    workdir = Path(workdir)
    config = json.loads((workdir / "config.json").read_text())
    records = read_jsonl(workdir / "metrics.jsonl")
    evaluation = json.loads((workdir / "eval.json").read_text()) if (workdir / "eval.json").exists() else {}
    last = records[-1] if records else {}
    return {
        "run": workdir.name,
        "model": config["model"],
        "dataset": config["dataset"],
        "dtype": config["dtype"],
        "batch": config["batch_size"],
        "epochs": f"{len(records)}/{config['num_epochs']}",
        # The first epoch pays for compilation: the last one shows the steady speed.
        "images/s": last.get("images_per_second"),
        "s/epoch": last.get("seconds"),
        "val acc": last.get("val_accuracy"),
        "test acc": evaluation.get("test_accuracy"),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows of equal keys as an aligned plain-text table; columns named "... acc" as percentages,
    other numbers under 10 (ratios, seconds, gigabytes) with two decimals, larger ones with one."""

    def cell(key: str, value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            if key.endswith("acc"):
                return f"{value:.2%}"
            return f"{value:.2f}" if abs(value) < 10 else f"{value:,.1f}"
        return str(value)

    header = list(rows[0])
    cells = [[cell(k, row[k]) for k in header] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    lines = [header, ["-" * w for w in widths], *cells]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)) for line in lines)


def main() -> None:
    """``python -m flax_resnets.reports WORKDIR...``: one table row per run; with ``--plots``,
    redraw each run's curves.png and confusion.png."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flax_resnets.reports", description=main.__doc__)
    parser.add_argument("workdirs", nargs="+")
    parser.add_argument("--plots", action="store_true", help="redraw curves.png and confusion.png")
    args = parser.parse_args()
    missing = [w for w in args.workdirs if not (Path(w) / "config.json").exists()]
    if missing:
        parser.exit(2, f"error: no run in {', '.join(missing)} (no config.json): pass training workdirs.\n")
    if args.plots:
        from flax_resnets.plots import write_plots

        for workdir in args.workdirs:
            for path in write_plots(Path(workdir)):
                print(f"wrote {path}")
        return
    print(format_table([run_summary(Path(w)) for w in args.workdirs]))


if __name__ == "__main__":
    main()
