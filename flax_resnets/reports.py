"""What a run leaves for people and tools: metrics.jsonl, TensorBoard summaries, JSON files.

``metrics.jsonl`` is rewritten from the checkpointed history when a run resumes, so after a
crash it holds exactly one line per finished epoch, as if the run had never stopped.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

# Fields of an epoch record that measure the machine, not the training: they differ between
# two runs of the same config, everything else must not.
TIMING_FIELDS = ("seconds", "images_per_second")


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON atomically: readers never see half a file."""
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


class EpochReport:
    """Appends one record per epoch to ``metrics.jsonl`` and to TensorBoard (``tensorboard/``)."""

    def __init__(self, workdir: Path, history: list[dict]):
        from tensorboardX import SummaryWriter

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
    """``python -m flax_resnets.reports WORKDIR...``: one table row per run."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flax_resnets.reports", description=main.__doc__)
    parser.add_argument("workdirs", nargs="+")
    args = parser.parse_args()
    missing = [w for w in args.workdirs if not (Path(w) / "config.json").exists()]
    if missing:
        parser.exit(2, f"error: no run in {', '.join(missing)} (no config.json): pass training workdirs.\n")
    print(format_table([run_summary(Path(w)) for w in args.workdirs]))


if __name__ == "__main__":
    main()
