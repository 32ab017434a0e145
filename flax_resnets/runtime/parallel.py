"""One mesh over every device of every host, and moving data onto it.

The mesh has two axes, ``seed`` x ``data``. Batches are split along their batch axis over
``data`` (``P(..., 'data')``); a run's members (``config.num_seeds``, ``runtime.members``) are
split over ``seed`` (``P('seed')`` on their leading axis; a one-seed run has one member). The
compiled step sees global arrays, so means over the batch, BatchNorm statistics included, are
over each member's global batch: one code path for one CPU, eight GPUs or a multi-host TPU slice.

How the axes share the devices (``mesh_shape``): the seed axis takes as many devices as divide
both the members and one host's devices, the data axis the rest. Eight devices train 8 members
one per device, with no communication at all; 4 members as 4 x 2 (each member's batch split over
2 devices); 3 members as 1 x 8 (every device holds all three, each with its part of the batch).
Several hosts keep the seed axis at 1, so that each host's rows of the batch are one slice.
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
    """Join a multi-process run when the config asks for it or the launcher set the coordinator.

    Every process runs the same command. On a Cloud TPU pod slice JAX finds the coordinator, the
    number of processes and each one's index itself; elsewhere set JAX_COORDINATOR_ADDRESS
    (host:port of process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID. CPU processes exchange
    gradients through gloo.
    """
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
    """Split along ``batch_axis`` over the data axis (and ``members``: the leading axis over the
    seed axis)."""
    leading = [SEED_AXIS] if members else []
    return NamedSharding(mesh, P(*leading, *[None] * (batch_axis - len(leading)), DATA_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, replicated(mesh))


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
