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
import itertools
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from flax_resnets.cli import command_parser, positive_int, positive_ints
from flax_resnets.config import DTYPES, default_config
from flax_resnets.data.arrays import Dataset
from flax_resnets.data.feeds import stacked_step
from flax_resnets.data.pipelines import PIPELINES, make_feed
from flax_resnets.data.sources import DATASET_NAMES, load_dataset
from flax_resnets.errors import InputError
from flax_resnets.files import write_json
from flax_resnets.models import require_models
from flax_resnets.runs.provenance import provenance
from flax_resnets.runs.summary import format_table
from flax_resnets.runtime import parallel, profiling, xla_cpu
from flax_resnets.training import steps


def recipe(model: str, dtype: str) -> ml_collections.ConfigDict:
    """The paper's recipe for ``model`` in ``dtype``: what the trainer would compile."""
    config = default_config(model=model)
    config.dtype = dtype
    return config


def timed_calls(call: Callable[[], Any], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls, each waited for."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(call())
        seconds.append(time.perf_counter() - started)
    return seconds


def replicated_train_state(
    model: str, dtype: str, *, num_classes: int, input_channels: int, mesh: Any
) -> tuple[Any, Any, steps.TrainState]:
    """The trainer's model, optimizer and initial state for ``model``, replicated over ``mesh``."""
    config = recipe(model, dtype)
    optimizer, _ = steps.make_optimizer(config, total_steps=10_000)
    graphdef, state = steps.create_train_state(
        config, num_classes=num_classes, input_channels=input_channels, optimizer=optimizer
    )
    return graphdef, optimizer, parallel.replicate(state, mesh)


class FlaxBench:
    """The trainer's compiled training and evaluation steps on one random batch."""

    def __init__(self, model: str, batch_size: int, dtype: str, steps_per_call: int, input_channels: int):
        self.images_per_call = batch_size * steps_per_call
        mesh = parallel.make_mesh()
        graphdef, optimizer, self.state = replicated_train_state(
            model, dtype, num_classes=10, input_channels=input_channels, mesh=mesh
        )
        rng = np.random.default_rng(0)
        images = rng.standard_normal((steps_per_call, batch_size, 32, 32, input_channels), np.float32)
        labels = rng.integers(0, 10, (steps_per_call, batch_size)).astype(np.int32)
        self.inputs = parallel.global_batch({"image": images, "label": labels}, mesh, batch_axis=1)
        self.eval_inputs = parallel.global_batch(
            {"image": images[0], "label": labels[0], "mask": np.ones(batch_size, bool)}, mesh
        )
        train = steps.jit_train_steps(graphdef, optimizer, stacked_step, mesh)
        started = time.perf_counter()
        self.train = train.lower(self.state, self.inputs, {}, steps_per_call).compile()  # called without it
        self.compile_seconds = time.perf_counter() - started
        self.evaluate = jax.jit(
            functools.partial(steps.eval_step, graphdef), compiler_options=xla_cpu.compiler_options()
        )

    def train_call(self) -> Any:
        self.state = self.train(self.state, self.inputs, {})
        return self.state

    def eval_call(self) -> Any:
        return self.evaluate(self.state.model_state(), self.eval_inputs)


def loop_row(args: argparse.Namespace, dataset: Dataset, model: str, batch_size: int) -> dict[str, Any]:
    """The trainer's loop on real data (its feed, augmentation, epochs) against its compiled step
    alone on one batch: both dispatch the same number of calls and wait once at the end, as the
    trainer does, so the difference is what the input pipeline and the host cost between steps."""
    mesh = parallel.make_mesh()
    graphdef, optimizer, state = replicated_train_state(
        model, args.dtype, num_classes=dataset.num_classes, input_channels=dataset.channels, mesh=mesh
    )
    feed_config = ml_collections.ConfigDict(
        {"input_pipeline": args.input_pipeline, "batch_size": batch_size, "seed": 0, "augment": True}
    )
    feed = make_feed(feed_config, dataset, mesh, eval_batch_size=batch_size)
    train = steps.jit_train_steps(graphdef, optimizer, feed.train_batch, mesh)
    constants = feed.constants("train")
    # Epoch after epoch; an epoch's last, shorter call would compile anew inside the timing, so
    # it is made but not run.
    size = args.steps_per_call
    chunks = (
        inputs
        for epoch in itertools.count()
        for inputs, num_steps in feed.train_calls(epoch=epoch, start_step=0, steps_per_call=size)
        if num_steps == size
    )
    first = next(chunks)
    for _ in range(args.warmup + 1):  # the first call compiles
        state = train(state, first, constants, size)
    jax.block_until_ready(state)
    calls = -(-args.loop_steps // size)

    started = time.perf_counter()
    for _ in range(calls):
        state = train(state, first, constants, size)
    jax.block_until_ready(state)
    step_seconds = time.perf_counter() - started

    started = time.perf_counter()
    for inputs in tqdm(
        itertools.islice(chunks, calls),
        total=calls,
        desc=f"{model} loop",
        leave=False,
        disable=not sys.stderr.isatty(),
    ):
        state = train(state, inputs, constants, size)
    jax.block_until_ready(state)
    loop_seconds = time.perf_counter() - started
    images = calls * size * batch_size
    step_images_per_second = images / step_seconds
    loop_images_per_second = images / loop_seconds
    return {
        "model": model,
        "batch": batch_size,
        "pipeline": args.input_pipeline,
        "steps": calls * size,
        "step img/s": step_images_per_second,
        "loop img/s": loop_images_per_second,
        "loop/step": loop_images_per_second / step_images_per_second,
    }


def peak_memory_gb() -> float:
    """Peak bytes in use on the first device where it tells; else the process's peak resident memory."""
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kilobytes on Linux


def benchmark_row(args: argparse.Namespace, model: str, batch_size: int) -> dict[str, Any]:
    flax = FlaxBench(model, batch_size, args.dtype, args.steps_per_call, args.input_channels)
    timed_calls(flax.train_call, args.warmup)
    timed_calls(flax.eval_call, args.warmup)
    torch = None
    if args.compare_torch:
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
        "dtype": args.dtype,
        "compile s": flax.compile_seconds,
        "train img/s": flax.images_per_call / statistics.median(flax_train),
        "eval img/s": batch_size / statistics.median(timed_calls(flax.eval_call, args.steps)),
        "peak GB": peak_memory_gb(),
    }
    if torch:
        row["torch img/s"] = batch_size / statistics.median(torch_train)
        row["flax/torch"] = row["train img/s"] / row["torch img/s"]
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


def main(argv: list[str]) -> int:
    parser = command_parser("benchmark", __doc__.splitlines()[0])
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
        help="also time the trainer's loop, input pipeline included, on this data: an image folder "
        "(root/{train,test}/<label>/*) or a file from `python -m flax_resnets data export`",
    )
    parser.add_argument(
        "--dataset", default="image_folder", choices=DATASET_NAMES, help="what --data_dir holds"
    )
    parser.add_argument("--input_pipeline", default="tfdata", choices=sorted(PIPELINES))
    parser.add_argument(
        "--loop_steps", type=positive_int, default=200, help="training steps timed in the loop"
    )
    parser.add_argument(
        "--profile_dir", help="trace each row's training calls into this folder and print the top ops"
    )
    parser.add_argument("--json", default="benchmark.json", help="where to write the rows")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    require_models(models)
    batch_sizes = args.batch_sizes
    devices = jax.device_count()
    if any(b % devices for b in batch_sizes):
        raise InputError(
            f"every batch size must be a multiple of the {devices} devices: change --batch_sizes."
        )
    print(f"{jax.devices()[0].device_kind} x{devices}, jax {jax.__version__}", flush=True)
    # Read (and check) the data before the first compilation, not after minutes of it.
    dataset = load_dataset(args.dataset, data_dir=args.data_dir, download=False) if args.data_dir else None
    result = {
        **provenance(),
        "command": " ".join(["python -m flax_resnets benchmark", *argv]),
        "rows": table(models, batch_sizes, functools.partial(benchmark_row, args)),
    }
    if dataset:
        result["loop_rows"] = table(models, batch_sizes, functools.partial(loop_row, args, dataset))
    if args.compare_torch:
        import torch

        result["versions"]["torch"] = torch.__version__
    write_json(Path(args.json), result)
    return 0


def table(models: list[str], batch_sizes: list[int], row: Callable[[str, int], dict]) -> list[dict]:
    """``row(model, batch_size)`` for each pair, printed as it comes, then as one table (of the
    numbers: a row's nested results, such as its profile, are printed by whoever makes them)."""
    rows = []
    for model in models:
        for batch_size in batch_sizes:
            rows.append(row(model, batch_size))
            print(format_table(numbers(rows[-1:])).splitlines()[-1], flush=True)
    print(format_table(numbers(rows)))
    return rows


def numbers(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if not isinstance(v, dict)} for row in rows]

