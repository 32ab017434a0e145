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
