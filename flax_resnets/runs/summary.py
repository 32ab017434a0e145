"""Reading finished runs back: one row per run, and the plain-text tables the commands print."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flax_resnets.files import read_json_object
from flax_resnets.runs.metrics import read_jsonl


def run_summary(workdir: Path) -> dict[str, Any]:
    """One row about a finished run: what it trained, how fast, how well."""
    workdir = Path(workdir)
    config = read_json_object(workdir / "config.json", "restore it from a backup")
    records = read_jsonl(workdir / "metrics.jsonl")
    evaluation_path = workdir / "eval.json"
    evaluation = {}
    if evaluation_path.exists():
        evaluation = read_json_object(evaluation_path, "evaluate the run again")
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
