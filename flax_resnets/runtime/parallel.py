"""One data-parallel mesh over every device of every host, and moving data onto it.

Parameters and optimizer state are replicated (``P()``), batches are split along their first
axis over the ``data`` axis (``P('data')``). The compiled step sees global arrays, so means
over the batch, BatchNorm statistics included, are over the global batch: one code path for
one CPU, eight GPUs or a multi-host TPU slice.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


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


def data_parallel_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
    return NamedSharding(mesh, P(*[None] * batch_axis, DATA_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, replicated(mesh))


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh, batch_axis: int = 0) -> dict[str, jax.Array]:
    """This process's rows of a batch -> one global array per field, split over the mesh along
    ``batch_axis`` (1 for a stack of batches)."""
    sharding = batch_sharded(mesh, batch_axis)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}


def abstract(tree: Any, mesh: Mesh) -> Any:
    """Shapes, dtypes and replicated shardings of ``tree``: the target a checkpoint restores into."""
    sharding = replicated(mesh)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
