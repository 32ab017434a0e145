"""A run's programs compiled ahead of time for devices this machine does not have (a TPU slice
that libtpu describes, ``runtime.tpu``): what they need of each device's memory and how many
FLOPs a step costs, before anyone rents the slice.

The programs are the trainer's own (``programs.build_programs``: the same mesh of the slice's
devices over every host, member axis, ``steps_per_call`` scan, dtype and shardings), lowered with
the state, the feed's inputs and the dataset as shapes only (``dataset_shapes``, ``call_shapes``).
Nothing is initialized, placed or read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from flax_resnets.data.arrays import IMAGE_SIZE, Dataset, Split
from flax_resnets.data.feeds import Feed
from flax_resnets.data.order import check_batch_size
from flax_resnets.data.sources import (
    TFDS_SIZES,
    TFDS_STATISTICS,
    normalized_as_configured,
    require_dataset,
    training_images,
)
from flax_resnets.errors import InputError
from flax_resnets.models.flops import jaxpr_macs
from flax_resnets.runtime import parallel
from flax_resnets.training import programs

TRAINING = "training call"


@dataclasses.dataclass(frozen=True)
class CompiledProgram:
    """One compiled program's needs on each device: bytes of its arguments (``dataset_bytes`` of
    them the resident dataset), outputs (less donated buffers), temporaries and code, and the FLOPs
    of a step's convolutions and matrix products (``models.flops``: forward, backward, every member)."""

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
        """An estimate of a step's HBM traffic: every byte the program holds but the dataset and
        its code, read or written once. (XLA's own cost analysis counts a gather from the resident
        dataset as a read of all of it, and a loop's body once, so it is not used.)"""
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
    """The training call (``config.steps_per_call`` steps of every member) and the test split's
    evaluation step of ``config`` over ``mesh``, traced (not yet lowered or compiled), each with
    the bytes of the dataset it keeps on every device."""
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
    train = training_images(num_train, config.validation_fraction)
    channels = 3 if config.image_channels == 3 else channels
    mean, std = (statistics * (channels // len(statistics)) for statistics in TFDS_STATISTICS[config.dataset])

    def zeros(num_images: int) -> Split:
        images = np.broadcast_to(np.zeros((), np.uint8), (num_images, IMAGE_SIZE, IMAGE_SIZE, channels))
        return Split(images, np.zeros((num_images,), np.int32))

    names = tuple(str(label) for label in range(num_classes))
    splits = zeros(min(train, config.train_images or train)), zeros(num_train - train), zeros(num_test)
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
    return [
        analysed(
            name,
            program,
            steps=config.steps_per_call if name == TRAINING else 1,
            devices=len(devices),
            dataset_bytes=dataset_bytes,
        )
        for name, (program, dataset_bytes) in traced.items()
    ]


def is_out_of_memory(error: Exception) -> bool:
    """Whether a compilation failed for want of device memory (XLA:TPU says so while compiling)."""
    return isinstance(error, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(error)
