"""``benchmark --parallel=K``: K benchmark processes at once on one accelerator, as ``sweep
--parallel=K`` runs K cells, and their training images/s summed.

Each process gets 1/K of the accelerator's memory (``sweep.cell_environment``) and runs the
same rows. Before timing a row, each waits at a barrier until all K have compiled it and warmed
up, so that their timed calls overlap: the sum is what K cells sharing the device train.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flax_resnets.commands.sweep import cell_environment
from flax_resnets.errors import InputError
from flax_resnets.runs.summary import format_table

BARRIER = "FLAX_RESNETS_BENCHMARK_BARRIER"  # FOLDER:K, set for each of the K processes
POLL_SECONDS = 0.05


def wait_for_the_other_cells(row: str) -> None:
    """In one of K benchmark processes: announce that ``row`` is ready to time, and wait until the
    other K - 1 are ready too. Does nothing in a process that runs alone."""
    if BARRIER not in os.environ:
        return
    folder, _, count = os.environ[BARRIER].rpartition(":")
    Path(folder, f"{row}.{os.getpid()}").touch()
    while len(list(Path(folder).glob(f"{row}.*"))) < int(count):
        time.sleep(POLL_SECONDS)


def cells_rows(argv: list[str], parallel: int) -> list[dict[str, Any]]:
    """Run the benchmark ``argv`` (one row set) in ``parallel`` processes at once; per row, the
    summed training images/s and each process's share."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {**cell_environment(parallel), BARRIER: f"{scratch}:{parallel}"}
        outputs = [Path(scratch) / f"cell{index}.json" for index in range(parallel)]
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "flax_resnets", "benchmark", *argv, "--parallel=1", f"--json={out}"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for out in outputs
        ]
        errors = [process.communicate()[1] for process in processes]
        failed = [error for process, error in zip(processes, errors, strict=True) if process.returncode]
        if failed:
            reason = failed[0].strip().splitlines()[-1] if failed[0].strip() else "no output"
            raise InputError(f"a benchmark process of --parallel={parallel} failed: {reason}")
        results = [json.loads(out.read_text())["rows"] for out in outputs]
    rows = []
    for same_rows in zip(*results, strict=True):
        first = same_rows[0]
        total = sum(row["train img/s"] for row in same_rows)
        rows.append(
            {
                "model": first["model"],
                "batch": first["batch"],
                "seeds": first["seeds"],
                "cells": parallel,
                "train img/s": total,
                "per cell": total / parallel,
            }
        )
    return rows


def cells_table(args: argparse.Namespace, alone: list[dict]) -> list[dict]:
    """Training images/s of K cells sharing the accelerator, for each K of ``--parallel`` (K = 1:
    this process's own rows), printed as one table."""
    same_rows = [
        f"--models={args.models}",
        f"--batch_sizes={','.join(map(str, args.batch_sizes))}",
        f"--num_seeds={','.join(map(str, args.num_seeds))}",
        *(f"--{name}={getattr(args, name)}" for name in ("dtype", "steps", "rounds", "warmup")),
        *(f"--{name}={getattr(args, name)}" for name in ("steps_per_call", "input_channels")),
    ]
    rows = [
        {**{k: row[k] for k in ("model", "batch", "seeds")}, "cells": 1, "train img/s": row["train img/s"]}
        for row in alone
    ]
    rows = [{**row, "per cell": row["train img/s"]} for row in rows]
    for cells in (k for k in args.parallel if k > 1):
        print(f"timing {cells} benchmark processes at once", flush=True)
        rows += cells_rows(same_rows, cells)
    print(format_table(rows))
    return rows
