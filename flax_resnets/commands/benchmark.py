"""``python -m flax_resnets benchmark``: training and evaluation speed, optionally against PyTorch.

For each model and batch size: compile time, training-step images/s (median over timed calls
after warm-up, synchronized), evaluation images/s and peak memory, on random inputs, with the
trainer's own compiled step (``steps_per_call`` steps per call). With ``--compare_torch`` the
same architecture and optimizer (SGD, momentum, weight decay) run in PyTorch, timed in
alternation with Flax (other jobs on a shared machine move timings by tens of percent), and
each row gets the Flax/PyTorch ratio. PyTorch is optional: ``pip install -e ".[bench]"``.

With ``--data_dir`` (real images: an image folder or an exported ``.npz``), a second table
times the trainer's loop, input pipeline included, against its compiled step alone. With
``--profile_dir``, each row's training calls are traced once more and the ops that took the
device's time are printed (``flax_resnets.runtime.profiling``).
"""

from __future__ import annotations

import argparse
import functools
import resource
import statistics
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
    output_folder,
    positive_int,
    positive_ints,
    user_path,
)
from flax_resnets.commands.benchmark_cells import cells_table, wait_for_the_other_cells
from flax_resnets.commands.benchmark_loop import loop_row, recipe_training
from flax_resnets.config import DTYPES
from flax_resnets.data.feeds import stacked_step
from flax_resnets.data.order import check_batch_size
from flax_resnets.data.sources import DATASET_NAMES, load_dataset
from flax_resnets.files import write_json
from flax_resnets.models import require_models
from flax_resnets.runs.provenance import provenance
from flax_resnets.runs.summary import format_table
from flax_resnets.runtime import parallel, profiling
from flax_resnets.training import steps


def timed_calls(call: Callable[[], Any], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls, each waited for."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(call())
        seconds.append(time.perf_counter() - started)
    return seconds


class FlaxBench:
    """The trainer's compiled training and evaluation steps on one random batch per member."""

    def __init__(
        self,
        model: str,
        batch_size: int,
        dtype: str,
        steps_per_call: int,
        input_channels: int,
        num_seeds: int = 1,
    ):
        self.images_per_call = batch_size * steps_per_call * num_seeds  # summed over the members
        mesh = parallel.make_mesh(num_seeds)
        training = recipe_training(
            model,
            dtype,
            num_classes=10,
            input_channels=input_channels,
            mesh=mesh,
            make_batch=stacked_step,
            num_seeds=num_seeds,
        )
        self.state = training.state
        rng = np.random.default_rng(0)
        shape = (num_seeds, steps_per_call, batch_size)
        images = rng.standard_normal((*shape, 32, 32, input_channels), np.float32)
        labels = rng.integers(0, 10, shape).astype(np.int32)
        self.inputs = parallel.global_batch(
            {"image": images, "label": labels}, mesh, batch_axis=2, members=True
        )
        self.eval_inputs = parallel.global_batch(
            {"image": images[0, 0], "label": labels[0, 0], "mask": np.ones(batch_size, bool)}, mesh
        )
        started = time.perf_counter()
        # Compiled for steps_per_call steps, and called without that argument.
        self.train = training.train.lower(self.state, self.inputs, {}, steps_per_call).compile()
        self.compile_seconds = time.perf_counter() - started
        self.evaluate = steps.jit_eval_step(
            training.graphdef, lambda inputs, _: inputs, mesh, num_seeds=num_seeds, member_inputs=False
        )

    def train_call(self) -> Any:
        self.state = self.train(self.state, self.inputs, {})
        return self.state

    def eval_call(self) -> Any:
        return self.evaluate(self.state.model_state(), self.eval_inputs, {})


def peak_memory_gb() -> float:
    """Peak bytes in use on the first device where it tells; else the process's peak resident memory."""
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kilobytes on Linux


def benchmark_row(args: argparse.Namespace, model: str, batch_size: int, num_seeds: int) -> dict[str, Any]:
    flax = FlaxBench(model, batch_size, args.dtype, args.steps_per_call, args.input_channels, num_seeds)
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
    if args.profile_dir:
        name = f"{model}_b{batch_size}_{args.dtype}"
        trace_file = profiling.trace(flax.train_call, args.steps, Path(args.profile_dir) / name)
        row["profile"] = profiling.summary(trace_file, args.steps, statistics.median(flax_train))
        print(
            f"{name}: device busy {row['profile']['device busy ms']:.2f} ms of "
            f"{row['profile']['wall ms']:.2f} ms per call ({trace_file})"
        )
        print(format_table(row["profile"]["kinds"]))
        print(format_table(row["profile"]["top ops"]), flush=True)
    return row


def argument_parser() -> CommandParser:
    """The benchmark's flags."""
    parser = command_parser("benchmark", __doc__)
    parser.add_argument("--models", default="resnet20,resnet18,vgg19")
    parser.add_argument("--batch_sizes", type=positive_ints, default="16,128")
    parser.add_argument("--dtype", default="float32", choices=DTYPES)
    parser.add_argument("--steps", type=positive_int, default=5, help="timed calls per round")
    parser.add_argument(
        "--rounds", type=positive_int, default=2, help="rounds of timed calls (alternating with PyTorch)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls after compilation")
    parser.add_argument("--steps_per_call", type=positive_int, default=1)
    parser.add_argument("--input_channels", type=positive_int, default=3)
    parser.add_argument(
        "--compare_torch", action="store_true", help="time the same step in PyTorch (CUDA when present)"
    )
    parser.add_argument(
        "--data_dir",
        type=user_path,
        help="also time the trainer's loop, input pipeline included, on this data: an image folder "
        "(root/{train,test}/<label>/*) or a file from `python -m flax_resnets data export`",
    )
    parser.add_argument(
        "--dataset", default="image_folder", choices=DATASET_NAMES, help="what --data_dir holds"
    )
    parser.add_argument(
        "--loop_steps", type=positive_int, default=200, help="training steps timed in the loop"
    )
    parser.add_argument(
        "--profile_dir",
        type=output_folder,
        help="trace each row's training calls into this folder and print the top ops",
    )
    parser.add_argument(
        "--num_seeds",
        type=positive_ints,
        default="1",
        help="members trained as one program (comma-separated: a row each); images/s summed over them",
    )
    parser.add_argument(
        "--parallel",
        type=positive_ints,
        default="1",
        help="also time K processes at once on the accelerator, as sweep --parallel=K (comma-separated K)",
    )
    parser.add_argument("--json", default="benchmark.json", type=output_file, help="where to write the rows")
    return parser


def main(argv: list[str]) -> int:
    args = argument_parser().parse_args(argv)
    models = args.models.split(",")
    require_models(models)
    for batch_size in args.batch_sizes:
        for num_seeds in args.num_seeds:
            check_batch_size(batch_size, jax.process_count(), jax.local_device_count(), num_seeds)
    # Read (and check) the data before anything is printed or compiled, not after minutes of it.
    dataset = load_dataset(args.dataset, data_dir=args.data_dir, download=False) if args.data_dir else None
    devices = jax.device_count()
    print(f"{jax.devices()[0].device_kind} x{devices}, jax {jax.__version__}", flush=True)
    rows = [(m, b, s) for m in models for b in args.batch_sizes for s in args.num_seeds]
    result = {
        **provenance(),
        "command": " ".join(["python -m flax_resnets benchmark", *argv]),
        "rows": table(rows, functools.partial(benchmark_row, args)),
    }
    if dataset:
        loop_rows = [(m, b) for m in models for b in args.batch_sizes]
        result["loop_rows"] = table(loop_rows, functools.partial(loop_row, args, dataset))
    if any(k > 1 for k in args.parallel):
        result["cells_rows"] = cells_table(args, result["rows"])
    if args.compare_torch:
        import torch

        result["versions"]["torch"] = torch.__version__
    write_json(Path(args.json), result)
    return 0


def table(combinations: list[tuple], row: Callable[..., dict]) -> list[dict]:
    """``row(*combination)`` for each combination (model, batch size, ...), printed as it comes,
    then as one table (of the numbers: a row's nested results, such as its profile, are printed
    by whoever makes them)."""
    rows = []
    for combination in combinations:
        rows.append(row(*combination))
        print(format_table(numbers(rows[-1:])).splitlines()[-1], flush=True)
    print(format_table(numbers(rows)))
    return rows


def numbers(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if not isinstance(v, dict)} for row in rows]
