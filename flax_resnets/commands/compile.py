"""``python -m flax_resnets compile``: a run's programs compiled for TPU slices, on a machine
without a TPU (libtpu alone: ``pip install "flax-resnets[tpu]"``), with what each needs of a device.

    python -m flax_resnets compile --cells=table1 --topology=v4:2x2x1,v5e:2x2,v6e:2x2 --out=tpu.md

Per device: bytes of arguments, outputs, temporaries and code against the HBM, GFLOPs of a step and
a roofline estimate (a lower bound). A training call too large is refused naming the batch that fits.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from flax_resnets import checks
from flax_resnets.cli import command_parser, load_config_file, output_file, parse_command
from flax_resnets.config import cell_config, named_cells
from flax_resnets.data.arrays import IMAGE_SIZE, Dataset, Split
from flax_resnets.data.feeds import Feed
from flax_resnets.data.order import check_batch_size
from flax_resnets.data.sources import (
    TFDS_SIZES,
    TFDS_STATISTICS,
    normalized_as_configured,
    require_dataset,
    split_sizes,
)
from flax_resnets.errors import InputError
from flax_resnets.files import write_text
from flax_resnets.interrupts import end_with_parent
from flax_resnets.models.flops import jaxpr_macs
from flax_resnets.runtime import parallel, tpu
from flax_resnets.training import programs

TRAINING = "training call"


@dataclasses.dataclass(frozen=True)
class CompiledProgram:
    """One compiled program's needs on each device (arguments, ``dataset_bytes`` of them the dataset;
    outputs less donated buffers; temporaries; code) and a step's FLOPs (``models.flops``)."""

    name: str
    steps: int
    argument_bytes: int
    output_bytes: int
    temporary_bytes: int
    code_bytes: int
    dataset_bytes: int
    flops: float
    compile_seconds: float

    @property
    def device_bytes(self) -> int:
        """What the program holds on a device at its peak, at most."""
        return self.argument_bytes + self.output_bytes + self.temporary_bytes + self.code_bytes

    @property
    def step_traffic_bytes(self) -> float:
        """A step's HBM traffic, estimated: every byte the program holds but the dataset and code, once
        (XLA's cost analysis counts a gather as a read of the whole dataset, a loop's body once)."""
        return (
            self.argument_bytes - self.dataset_bytes + self.output_bytes + self.temporary_bytes
        ) / self.steps


def analysed(name: str, traced: Any, *, steps: int, devices: int, dataset_bytes: int) -> CompiledProgram:
    """Compile ``traced`` (a program of ``steps`` steps over ``devices`` devices, its work shared
    evenly) and read its memory analysis, per device, and its FLOPs, per device and step."""
    started = time.perf_counter()
    with no_persistent_cache():
        compiled = traced.lower().compile()
    seconds = time.perf_counter() - started
    memory = compiled.memory_analysis()
    return CompiledProgram(
        name=name,
        steps=steps,
        argument_bytes=memory.argument_size_in_bytes,
        output_bytes=memory.output_size_in_bytes - memory.alias_size_in_bytes,
        temporary_bytes=memory.temp_size_in_bytes,
        code_bytes=memory.generated_code_size_in_bytes,
        dataset_bytes=dataset_bytes,
        flops=2 * jaxpr_macs(traced.jaxpr.jaxpr) / devices / steps,
        compile_seconds=seconds,
    )


@contextlib.contextmanager
def no_persistent_cache() -> Iterator[None]:
    """JAX's persistent compilation cache off meanwhile: a program compiled for devices this
    process has no client of can be written there but never read back (JAX warns at each try)."""
    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)


def trace_run(config: ml_collections.ConfigDict, mesh: Mesh) -> dict[str, tuple[Any, int]]:
    """The training call and the test split's evaluation step of ``config`` over ``mesh``, traced
    (not lowered), each with the bytes of the dataset it keeps on every device."""
    devices = list(mesh.devices.flat)
    hosts = len({device.process_index for device in devices})
    check_batch_size(config.batch_size, hosts, len(devices) // hosts, config.num_seeds)
    program = programs.build_programs(config, dataset_shapes(config), mesh, shapes_only=True)
    train_inputs, train_constants = call_shapes(program.feed, "train")
    eval_inputs, eval_constants = call_shapes(program.feed, "test")
    return {
        TRAINING: (
            program.train.trace(program.state, train_inputs, train_constants, config.steps_per_call),
            nbytes(train_constants),
        ),
        "evaluation step": (
            program.evaluate.trace(program.state.model_state(), eval_inputs, eval_constants),
            nbytes(eval_constants),
        ),
    }


def dataset_shapes(config: ml_collections.ConfigDict) -> Dataset:
    """``load_config_dataset``'s dataset for a named dataset, read from nothing: zeros of the right
    shapes that take no memory (one value, broadcast)."""
    if config.dataset not in TFDS_SIZES:
        raise InputError(
            f"dataset={config.dataset!r} has no known shapes: compile a config of one of "
            f"{', '.join(TFDS_SIZES)} (the shapes of your images' dataset are those of the one it resembles)."
        )
    require_dataset(config.dataset, config.validation_fraction)
    num_classes, channels, num_train, num_test = TFDS_SIZES[config.dataset]
    channels = 3 if config.image_channels == 3 else channels
    mean, std = (statistics * (channels // len(statistics)) for statistics in TFDS_STATISTICS[config.dataset])

    def zeros(num_images: int) -> Split:
        images = np.broadcast_to(np.zeros((), np.uint8), (num_images, IMAGE_SIZE, IMAGE_SIZE, channels))
        return Split(images, np.zeros((num_images,), np.int32))

    names = tuple(str(label) for label in range(num_classes))
    sizes = split_sizes(num_train, num_test, config.validation_fraction, config.train_images)
    splits = (zeros(size) for size in sizes)
    return normalized_as_configured(config, Dataset(config.dataset, names, mean, std, *splits))


def call_shapes(feed: Feed, split: str) -> tuple[Any, Any]:
    """(inputs, constants) of a compiled call on ``split`` ("train": the training call's, else an
    evaluation batch's) as shapes and shardings; nothing is placed."""
    replicated = parallel.replicated(feed.mesh)
    constants = {
        name: jax.ShapeDtypeStruct(array.shape, array.dtype, sharding=replicated)
        for name, array in feed.host_constants(split).items()
    }
    if split == "train":
        order = (feed.num_seeds, feed.epoch_steps, feed.batch_size)
        inputs = {
            "order": jax.ShapeDtypeStruct(order, np.int32, sharding=feed.order_sharding()),
            "seed": jax.ShapeDtypeStruct(
                (feed.num_seeds,), np.int32, sharding=parallel.state_sharding(feed.mesh)
            ),
        }
        return inputs, constants
    batch, batch_axis = next(feed.eval_host_batches(split))
    sharding = parallel.batch_sharded(feed.mesh, batch_axis, members=bool(batch_axis))
    return {
        key: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding) for key, a in batch.items()
    }, constants


def nbytes(shapes: Any) -> int:
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(shapes))


def compile_run(
    config: ml_collections.ConfigDict, devices: list[Any], *, only_training: bool = False
) -> list[CompiledProgram]:
    """``trace_run`` over a mesh of ``devices`` (a slice's, in its order), compiled and analysed
    (``only_training``: the training call alone)."""
    mesh = parallel.make_mesh(config.num_seeds, devices)
    traced = trace_run(config, mesh)
    if only_training:
        traced = {TRAINING: traced[TRAINING]}
    steps = {name: config.steps_per_call if name == TRAINING else 1 for name in traced}
    return [
        analysed(name, program, steps=steps[name], devices=len(devices), dataset_bytes=dataset_bytes)
        for name, (program, dataset_bytes) in traced.items()
    ]


def is_out_of_memory(error: Exception) -> bool:
    """Whether a compilation failed for want of device memory (XLA:TPU says so while compiling)."""
    return isinstance(error, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(error)


HEADER = (
    "| config | model, batch, seeds, dtype | slice | devices (hosts) | program | arguments | outputs "
    "| temporaries | code | per device / HBM | GFLOP per step | roofline per step | compile |"
)
SEPARATOR = "|" + " --- |" * (HEADER.count(" | ") + 1)


def configs_of(args: Any, overrides: list[str]) -> dict[str, ml_collections.ConfigDict]:
    """The configs to compile, by name: --config's file, or --cells' Table 1 cells, with overrides."""
    if bool(args.config) == bool(args.cells):
        raise InputError(
            "pass either --config=FILE or --cells=CELL,... (or --cells=table1), not both or neither."
        )
    if args.config:
        named = {args.config: load_config_file(args.config)}
    else:
        named = {name: cell_config(name) for name in named_cells(args.cells)}
    configured = {name: checks.with_overrides(config, overrides) for name, config in named.items()}
    for config in configured.values():
        checks.validate_config(config)
    return configured


def roofline_seconds(program: CompiledProgram, chip: tpu.Chip, devices_per_chip: int) -> float:
    """A step's time at the device's peak FLOP/s or HBM bandwidth, whichever binds."""
    return max(
        program.flops / (chip.peak_flops / devices_per_chip),
        program.step_traffic_bytes / (chip.hbm_bytes_per_second / devices_per_chip),
    )


def megabytes(count: float) -> str:
    return f"{count / 1e6:,.0f} MB"


def row_start(name: str, config: ml_collections.ConfigDict, tpu_slice: tpu.Slice) -> str:
    """A row's first four columns: the config and the slice."""
    return (
        f"| {name} | {config.model}, {config.batch_size}, {config.num_seeds}, {config.dtype} "
        f"| {tpu_slice.name} | {len(tpu_slice.devices)} ({tpu_slice.hosts}) "
    )


def row(name: str, config: ml_collections.ConfigDict, tpu_slice: tpu.Slice, program: CompiledProgram) -> str:
    hbm = tpu_slice.chip.hbm_bytes / tpu_slice.devices_per_chip
    seconds = roofline_seconds(program, tpu_slice.chip, tpu_slice.devices_per_chip)
    return (
        f"{row_start(name, config, tpu_slice)}| {program.name} "
        f"| {megabytes(program.argument_bytes)} | {megabytes(program.output_bytes)} "
        f"| {megabytes(program.temporary_bytes)} | {megabytes(program.code_bytes)} "
        f"| {program.device_bytes / hbm:.1%} of {hbm / 1e9:.1f} GB | {program.flops / 1e9:,.1f} "
        f"| {seconds * 1e3:,.2f} ms | {program.compile_seconds:.0f} s |"
    )


def largest_fitting_batch(config: ml_collections.ConfigDict, tpu_slice: tpu.Slice) -> int:
    """The largest batch whose training call fits a device: extrapolated from two small batches'
    memory, then confirmed by compiling, stepping down; 0 when one example per device does not fit."""
    hbm = tpu_slice.chip.hbm_bytes / tpu_slice.devices_per_chip
    data_devices = len(tpu_slice.devices)  # a multiple of it always shares out over the data axis

    def training_bytes(batch_size: int) -> float:
        overrides = [f"--config.batch_size={batch_size}"]
        programs = compiled(checks.with_overrides(config, overrides), tpu_slice, only_training=True)
        return float("inf") if programs is None else programs[0].device_bytes

    small, larger = data_devices, 8 * data_devices
    small_bytes, larger_bytes = training_bytes(small), training_bytes(larger)
    if small_bytes > hbm:
        return 0
    per_example = max((larger_bytes - small_bytes) / (larger - small), 1.0)
    batch = int((hbm - small_bytes) / per_example + small) // data_devices * data_devices
    while batch > small and training_bytes(batch) > hbm:
        batch = int(batch * 0.9) // data_devices * data_devices
    return max(batch, small)


class CompilerCrashError(Exception):
    """libtpu's compiler ended its process (for v6e under a stack limit, ``runtime.tpu``)."""


def compiled(
    config: ml_collections.ConfigDict, tpu_slice: tpu.Slice, *, only_training: bool = False
) -> list[CompiledProgram] | None:
    """``compile_run`` in a child process (its messages in a file; without a stack limit where this one's
    allows): libtpu's compiler crashing is a ``CompilerCrashError`` (v6e's crashes now and then even so: a
    crashed child is started once more); None where the program does not fit a device's memory."""
    report = Path(tempfile.mkstemp(prefix="flax_resnets_compile_", suffix=".log")[1])
    # The pool's semaphores, left by a compile ended by a signal, are its resource tracker's to remove:
    # without a warning on the command's stderr after its last line.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning:multiprocessing.resource_tracker")
    context = multiprocessing.get_context("spawn")
    for attempt in (1, 2):
        with (
            tpu.stack_limit_lifted() as unlimited,
            concurrent.futures.ProcessPoolExecutor(
                1, mp_context=context, initializer=start_child, initargs=(str(report), os.getpid())
            ) as child,
        ):
            job = child.submit(compile_here, config.to_json(), tpu_slice.name, only_training)
            try:
                programs = job.result()
            except concurrent.futures.process.BrokenProcessPool:
                if attempt == 1 and unlimited:
                    continue
                hint = "" if unlimited else "; it had a stack limit: try again after `ulimit -s unlimited`"
                raise CompilerCrashError(f"libtpu's compiler crashed (its report: {report}){hint}") from None
            except BaseException:  # refused: its report says nothing more
                report.unlink()
                raise
        report.unlink()
        return programs


def start_child(report: str, parent: int) -> None:
    """In the child: it ends with its parent (SIGKILL: it writes nothing), its stderr (libtpu's,
    XLA's) into ``report``."""
    end_with_parent(parent, signal.SIGKILL)
    os.dup2(os.open(report, os.O_WRONLY | os.O_APPEND), 2)


def compile_here(config_json: str, slice_name: str, only_training: bool) -> list[CompiledProgram] | None:
    config = ml_collections.ConfigDict(json.loads(config_json))
    try:
        return compile_run(config, tpu.slice_of(slice_name).devices, only_training=only_training)
    except InputError:
        raise
    except Exception as error:
        if is_out_of_memory(error):
            return None
        raise InputError(f"{type(error).__name__}: {str(error).strip().splitlines()[0]}") from None


def compile_config(name: str, config: ml_collections.ConfigDict, tpu_slice: tpu.Slice) -> list[str]:
    """The table's rows of ``config`` on ``tpu_slice``; a training call too large for a device is
    refused naming the batch that fits."""
    hbm = tpu_slice.chip.hbm_bytes / tpu_slice.devices_per_chip
    print(f"{name} on {tpu_slice.name}: compiling the training call and evaluation step", file=sys.stderr)
    programs = compiled(config, tpu_slice)
    if programs is None or programs[0].device_bytes > hbm:
        print(f"{name}: batch_size={config.batch_size} does not fit {tpu_slice.name}; finding one that does.")
        batch = largest_fitting_batch(config, tpu_slice)
        advice = (
            f"the largest that fits is about {batch} (--config.batch_size={batch})"
            if batch
            else "not even one example per device fits: use a smaller model or bfloat16"
        )
        raise InputError(
            f"{name} does not fit a {tpu_slice.chip.generation} device ({hbm / 1e9:.1f} GB) at "
            f"batch_size={config.batch_size} with {config.num_seeds} seed(s): {advice}."
        )
    return [row(name, config, tpu_slice, program) for program in programs]


def main(argv: list[str]) -> int:
    parser = command_parser("compile", __doc__)
    add = parser.add_argument
    add("--config", help="a config file, e.g. configs/cifar10_resnet18.py (or FILE:ARG)")
    add("--cells", help="Table 1 cells, comma-separated: cells, datasets (their 5 cells) or table1 (all 15)")
    add("--topology", required=True, help="TPU slices GENERATION:TOPOLOGY, e.g. v5e:4x4,v4:2x2x2,v6e:2x2")
    add("--out", type=output_file, help="also write the table to this Markdown file")
    args, overrides = parse_command(parser, argv)
    configs = configs_of(args, overrides)
    slices = [tpu.slice_of(name) for name in args.topology.split(",")]
    rows, crashed = [], []
    print(HEADER, SEPARATOR, sep="\n", flush=True)
    for tpu_slice in slices:
        for name, config in configs.items():
            try:
                lines = compile_config(name, config, tpu_slice)
            except CompilerCrashError as error:
                crashed.append(f"{name} on {tpu_slice.name}: {error}")
                crash = "| does not compile: libtpu's compiler crashed |" + " |" * 8
                lines = [f"{row_start(name, config, tpu_slice)}{crash}"]
            for line in lines:
                rows.append(line)
                print(line, flush=True)
            if args.out:  # rewritten whole after every row: a long table survives a crash
                write_text(args.out, "\n".join([HEADER, SEPARATOR, *rows]) + "\n")
    if args.out:
        print(f"wrote {args.out.resolve()}", file=sys.stderr)
    for line in crashed:
        print(f"error: {line}", file=sys.stderr)
    return 1 if crashed else 0
