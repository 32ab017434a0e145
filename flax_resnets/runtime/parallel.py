"""One mesh over every device of every host, ``seed`` x ``data``: a run's members split over ``seed``,
batches over ``data`` (the seed axis takes the devices that divide both the members and a host's
devices); the compiled step sees global arrays, so BatchNorm's statistics are over each member's
global batch on one CPU, eight GPUs or a TPU slice alike.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"
SEED_AXIS = "seed"


def initialize_distributed(requested: bool) -> None:
    """Join a multi-process run (every process runs the same command) when the config asks or
    JAX_COORDINATOR_ADDRESS is set (with JAX_NUM_PROCESSES, JAX_PROCESS_ID; a TPU pod finds them)."""
    if jax.distributed.is_initialized() or not (requested or os.environ.get("JAX_COORDINATOR_ADDRESS")):
        return
    if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    number = os.environ.get("JAX_NUM_PROCESSES")
    index = os.environ.get("JAX_PROCESS_ID")
    jax.distributed.initialize(
        num_processes=int(number) if number else None, process_id=int(index) if index else None
    )


def mesh_shape(num_seeds: int, process_count: int, local_device_count: int) -> tuple[int, int]:
    """(seed, data) axis sizes for ``num_seeds`` members on these devices."""
    seed_devices = math.gcd(num_seeds, local_device_count) if process_count == 1 else 1
    return seed_devices, process_count * local_device_count // seed_devices


def make_mesh(num_seeds: int = 1, devices: Sequence[Any] | None = None) -> Mesh:
    """The mesh of ``devices`` (default: every device of the run, ``jax.devices()``; or a TPU
    topology's, to compile for a slice ahead of time), in their order."""
    devices = list(jax.devices() if devices is None else devices)
    process_count = len({device.process_index for device in devices})
    shape = mesh_shape(num_seeds, process_count, len(devices) // process_count)
    return Mesh(np.asarray(devices).reshape(shape), (SEED_AXIS, DATA_AXIS))


def platform(mesh: Mesh) -> str:
    """What the mesh's devices are: "cpu", "gpu" or "tpu"."""
    return mesh.devices.flat[0].platform


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def state_sharding(mesh: Mesh) -> NamedSharding:
    """A training state's: its members (leading axis) split over the seed axis."""
    return NamedSharding(mesh, P(SEED_AXIS))


def batch_sharded(mesh: Mesh, batch_axis: int = 0, *, members: bool = False) -> NamedSharding:
    """Split along ``batch_axis`` over the data axis (``members``: the leading axis over the seed axis)."""
    leading = [SEED_AXIS] if members else []
    return NamedSharding(mesh, P(*leading, *[None] * (batch_axis - len(leading)), DATA_AXIS))


def place_state(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, state_sharding(mesh))


def global_batch(
    local_batch: dict[str, np.ndarray], mesh: Mesh, batch_axis: int = 0, *, members: bool = False
) -> dict[str, jax.Array]:
    """This process's rows of a batch -> one global array per field, split over the mesh along
    ``batch_axis`` (1 for a stack of batches, 2 for the members' stacks: ``members``)."""
    sharding = batch_sharded(mesh, batch_axis, members=members)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}


def abstract(tree: Any, mesh: Mesh) -> Any:
    """Shapes, dtypes and shardings of a state ``tree``: the target a checkpoint restores into."""
    sharding = state_sharding(mesh)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
