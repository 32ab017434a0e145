"""``python -m flax_resnets benchmark``: training and evaluation speed, optionally against PyTorch.

Per model and batch size: compile time, training and evaluation images/s and peak memory, with the
trainer's own programs on random images (``--compare_torch``: PyTorch's step beside).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from flax_resnets.cli import (
    CommandParser,
    command_parser,
    output_file,
    positive_int,
    positive_ints,
)
from flax_resnets.commands.sweep import cell_environment
from flax_resnets.config import DTYPES, default_config
from flax_resnets.data.arrays import IMAGE_SIZE, Dataset, Split
from flax_resnets.data.order import check_batch_size
from flax_resnets.errors import InputError
from flax_resnets.files import write_json
from flax_resnets.models import require_models
from flax_resnets.runs.provenance import provenance
from flax_resnets.runs.summary import format_table
from flax_resnets.runtime import parallel
from flax_resnets.training.programs import build_programs

# ``--parallel=K``: K benchmark processes at once on the accelerator, as ``sweep --parallel=K`` runs
# K cells, each with 1/K of its memory; before timing a row, each waits at a barrier until all K
# have compiled and warmed it up, so that their timed calls overlap and their sum is what K cells train.
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
    with tempfile.TemporaryDirectory() as scratch, contextlib.ExitStack() as logs:
        env = {**cell_environment(parallel), BARRIER: f"{scratch}:{parallel}"}
        outputs = [Path(scratch) / f"cell{index}.json" for index in range(parallel)]
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "flax_resnets", "benchmark", *argv, "--parallel=1", f"--json={out}"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=logs.enter_context(open(out.with_suffix(".log"), "w")),
            )
            for out in outputs
        ]
        # Until all end or one fails: the others would wait for it at the barrier for ever.
        while any(p.poll() is None for p in processes) and not any(p.poll() for p in processes):
            time.sleep(POLL_SECONDS)
        failed = [out for out, process in zip(outputs, processes, strict=True) if process.poll()]
        for process in processes:
            process.kill()
            process.wait()
        if failed:
            reason = failed[0].with_suffix(".log").read_text().strip().splitlines() or ["no output"]
            raise InputError(f"a benchmark process of --parallel={parallel} failed: {reason[-1]}")
        results = [json.loads(out.read_text())["rows"] for out in outputs]
    rows = []
    for same_rows in zip(*results, strict=True):
        total = sum(row["train img/s"] for row in same_rows)
        row = {key: same_rows[0][key] for key in ("model", "batch", "seeds")}
        rows.append({**row, "cells": parallel, "train img/s": total, "per cell": total / parallel})
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


def timed_calls(call: Callable[[], Any], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls, each waited for."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(call())
        seconds.append(time.perf_counter() - started)
    return seconds


def bench_config(model: str, batch_size: int, dtype: str, steps_per_call: int, num_seeds: int = 1) -> Any:
    """The paper's recipe for ``model`` at this batch size, dtype, steps per call and members."""
    config = default_config(model=model)
    config.update(batch_size=batch_size, eval_batch_size=batch_size, dtype=dtype)
    config.update(steps_per_call=steps_per_call, num_seeds=num_seeds)
    return config


def random_dataset(train_images: int, test_images: int, channels: int) -> Dataset:
    """Random uint8 images of 10 classes: what the programs' speed does not depend on."""
    rng = np.random.default_rng(0)

    def split(count: int) -> Split:
        images = rng.integers(0, 256, (count, IMAGE_SIZE, IMAGE_SIZE, channels), dtype=np.uint8)
        return Split(images, rng.integers(0, 10, count).astype(np.int32))

    statistics = ((0.5,) * channels, (0.25,) * channels)
    return Dataset(
        "random", tuple(map(str, range(10))), *statistics, split(train_images), split(0), split(test_images)
    )


class FlaxBench:
    """The trainer's programs (feed, augmentation and step in one call) on a dataset: its training
    call on the first call's inputs, its evaluation step on the test split's first batch."""

    def __init__(self, config: Any, dataset: Dataset):
        size = config.steps_per_call
        self.images_per_call = config.batch_size * size * config.num_seeds  # summed over the members
        self.program = build_programs(config, dataset, parallel.make_mesh(config.num_seeds))
        feed = self.program.feed
        self.state, self.constants = self.program.state, feed.constants("train")
        self.inputs = next(feed.train_calls(epoch=0, start_step=0, steps_per_call=size))[0]
        self.eval_inputs, self.eval_constants = next(feed.eval_inputs("test")), feed.constants("test")
        started = time.perf_counter()
        # Compiled for steps_per_call steps, and called without that argument.
        self.train = self.program.train.lower(self.state, self.inputs, self.constants, size).compile()
        self.compile_seconds = time.perf_counter() - started

    def train_call(self) -> Any:
        self.state = self.train(self.state, self.inputs, self.constants)
        return self.state

    def eval_call(self) -> Any:
        return self.program.evaluate(self.state.model_state(), self.eval_inputs, self.eval_constants)


def peak_memory_gb() -> float:
    """Peak bytes in use on the first device where it tells; else the process's peak resident memory."""
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kilobytes on Linux


def benchmark_row(args: argparse.Namespace, model: str, batch_size: int, num_seeds: int) -> dict[str, Any]:
    config = bench_config(model, batch_size, args.dtype, args.steps_per_call, num_seeds)
    flax = FlaxBench(
        config, random_dataset(batch_size * args.steps_per_call, batch_size, args.input_channels)
    )
    timed_calls(flax.train_call, args.warmup)
    timed_calls(flax.eval_call, args.warmup)
    wait_for_the_other_cells(f"{model}_b{batch_size}_s{num_seeds}")
    torch = None
    if args.compare_torch and num_seeds == 1:
        from flax_resnets.twins import torch_models

        torch = torch_models.TorchBench(model, batch_size, args.input_channels, args.dtype)
        timed_calls(torch.train_call, args.warmup)
    flax_train, torch_train = [], []
    for _ in range(args.rounds):  # alternate the two so that both see the same machine load
        flax_train += timed_calls(flax.train_call, args.steps)
        if torch:
            torch_train += timed_calls(torch.train_call, args.steps)
    row = {
        "model": model,
        "batch": batch_size,
        "seeds": num_seeds,
        "dtype": args.dtype,
        "compile s": flax.compile_seconds,
        "train img/s": flax.images_per_call / statistics.median(flax_train),
        "eval img/s": batch_size * num_seeds / statistics.median(timed_calls(flax.eval_call, args.steps)),
        "peak GB": peak_memory_gb(),
    }
    if args.compare_torch:  # PyTorch's one-seed step (a row of several seeds has none to compare)
        row["torch img/s"] = batch_size / statistics.median(torch_train) if torch else None
        row["flax/torch"] = row["train img/s"] / row["torch img/s"] if torch else None
    return row


def argument_parser() -> CommandParser:
    """The benchmark's flags."""
    parser = command_parser("benchmark", __doc__)
    add = parser.add_argument
    add("--models", default="resnet20,resnet18,vgg19")
    add("--batch_sizes", type=positive_ints, default="16,128")
    add("--dtype", default="float32", choices=DTYPES)
    add("--steps", type=positive_int, default=5, help="timed calls per round")
    add("--rounds", type=positive_int, default=2, help="rounds of timed calls (alternating with PyTorch)")
    add("--warmup", type=int, default=2, help="untimed calls after compilation")
    add("--steps_per_call", type=positive_int, default=1)
    add("--input_channels", type=positive_int, default=3)
    add("--compare_torch", action="store_true", help="time the same step in PyTorch (CUDA when present)")
    add("--num_seeds", type=positive_ints, default="1", help="members as one program (a row each K)")
    add("--parallel", type=positive_ints, default="1", help="also time K processes at once, as sweep's")
    add("--json", default="benchmark.json", type=output_file, help="where to write the rows")
    return parser


def main(argv: list[str]) -> int:
    args = argument_parser().parse_args(argv)
    models = args.models.split(",")
    require_models(models)
    for batch_size in args.batch_sizes:
        for num_seeds in args.num_seeds:
            check_batch_size(batch_size, jax.process_count(), jax.local_device_count(), num_seeds)
    devices = jax.device_count()
    print(f"{jax.devices()[0].device_kind} x{devices}, jax {jax.__version__}", flush=True)
    rows = [(m, b, s) for m in models for b in args.batch_sizes for s in args.num_seeds]
    result = {
        **provenance(),
        "command": " ".join(["python -m flax_resnets benchmark", *argv]),
        "rows": table(rows, functools.partial(benchmark_row, args)),
    }
    if any(k > 1 for k in args.parallel):
        result["cells_rows"] = cells_table(args, result["rows"])
    if args.compare_torch:
        import torch

        result["versions"]["torch"] = torch.__version__
    write_json(Path(args.json), result)
    return 0


def table(combinations: list[tuple], row: Callable[..., dict]) -> list[dict]:
    """``row(*combination)`` for each combination, printed as it comes, then as one table."""
    rows = []
    for combination in combinations:
        rows.append(row(*combination))
        print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    print(format_table(rows))
    return rows
