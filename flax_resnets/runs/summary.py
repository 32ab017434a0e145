"""Reading finished runs back: one row per run, and the plain-text tables the commands print."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flax_resnets.errors import shown
from flax_resnets.runs.workdir import RunFiles


def data_label(config: Mapping[str, Any]) -> str:
    """What a run trained on, as a person names it: the dataset, or an image folder's (or exported
    file's) own name."""
    if config["dataset"] != "image_folder" or not config.get("data_dir"):
        return config["dataset"]
    return f"{Path(str(config['data_dir']).rstrip('/')).stem} (image folder)"


def result_line(report: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """The console's last line of a run or an evaluation: the test accuracy (the members' mean and
    standard deviation) and the checkpoint (each member's) it was measured on."""
    members = report["seeds"]
    accuracy = f"{report['test_accuracy']:.2%}"
    checkpoint = f"checkpoint at step {report['checkpoint_step']}"
    if len(members) > 1:
        accuracy += f" ± {report['test_accuracy_std']:.2%} over {len(members)} seeds"
        steps = ", ".join(f"{m['checkpoint_step']} (seed {m['seed']})" for m in members)
        checkpoint = f"checkpoints at steps {steps}"
    return (
        f"{config['model']} on {data_label(config)}: test accuracy {accuracy}, "
        f"loss {report['test_loss']:.4f} over {report['num_examples']} images ({checkpoint})"
    )


def run_summary(run: RunFiles, name: str | None = None) -> dict[str, Any]:
    """One row about a run, named ``name`` (default: its folder's): what it trained, how fast, how
    well (a run that has not finished an epoch yet has no metrics.jsonl: a row of dashes)."""
    config, last = run.config, (run.metrics[-1] if run.metrics else {})
    return {
        "run": name or run.folder.name,
        "model": config["model"],
        "dataset": data_label(config),
        "dtype": config["dtype"],
        "batch": config["batch_size"],
        "epochs": f"{len(run.metrics)}/{config['num_epochs']}",
        # The first epoch pays for compilation: the last one shows the steady speed.
        "images/s": last.get("images_per_second"),
        "s/epoch": last.get("seconds"),
        "val acc": last.get("val_accuracy"),
        "test acc": (run.evaluation or {}).get("test_accuracy"),
    }


def distinct_names(workdirs: list[Path]) -> list[str]:
    """Each workdir's name in a table of them: its folder's name, with as many parent folders as
    it takes to tell it from the others (``a/qs`` and ``b/qs``), shown on one line."""
    parts = [Path(workdir).absolute().parts for workdir in workdirs]
    names = []
    for own in parts:
        depth = 1
        while depth < len(own) and sum(other[-depth:] == own[-depth:] for other in parts) > 1:
            depth += 1
        names.append(shown(os.path.join(*own[-depth:])))
    return names


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
