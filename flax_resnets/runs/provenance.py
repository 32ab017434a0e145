"""``run.json``: where and how a finished run was made (device, versions, commit, data, time), so
that its numbers can be trusted and compared (``python -m flax_resnets table1``)."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from flax_resnets.runtime.members import member_seeds


def source_commit() -> str:
    """The project's git commit ("-dirty" with uncommitted changes), $FLAX_RESNETS_COMMIT where
    the source travelled without its .git (copied to another machine), else "unknown"."""
    if os.environ.get("FLAX_RESNETS_COMMIT"):
        return os.environ["FLAX_RESNETS_COMMIT"]
    root = Path(__file__).resolve().parents[2]
    describe = ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=40", "--exclude=*"]
    try:  # the full hash, never a tag's name; "-dirty" for changes to tracked files
        return subprocess.run(describe, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def processor_name() -> str:
    """The host's processor model ("Intel(R) Xeon(R) Processor", ...): float rounding, and so a
    run's last digits, can differ from one processor to another."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance() -> dict[str, Any]:
    """The machine, the library versions and the commit that produced a result."""
    import flax
    import jax
    import jaxlib
    import optax
    import orbax.checkpoint

    libraries = (jax, jaxlib, flax, optax, orbax.checkpoint)
    versions = {library.__name__.replace(".", "-"): library.__version__ for library in libraries}
    return {
        "device": jax.devices()[0].device_kind,
        "processor": processor_name(),
        "platform": jax.default_backend(),
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        "versions": {"python": platform.python_version(), **versions},
        "commit": source_commit(),
    }


def run_record(config: Any, dataset: Any, history: list[dict]) -> dict[str, Any]:
    """``run.json`` of a finished run: provenance, the data it read, how long it trained."""
    return {
        **provenance(),
        "model": config.model,
        "dtype": config.dtype,
        "seeds": member_seeds(config.seed, config.num_seeds),
        "epochs": len(history),
        "wall_seconds": sum(record["seconds"] for record in history),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": {"dataset": config.dataset, "data_dir": config.data_dir, **dataset.summary()},
    }
