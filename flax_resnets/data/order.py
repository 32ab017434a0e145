"""Which examples each step and each process sees: the order is a function of (seed, epoch), so that a
run resumes at any step and every host computes the global order and keeps its own rows.
"""

from __future__ import annotations

import numpy as np

from flax_resnets.errors import InputError
from flax_resnets.runtime import parallel


def check_batch_size(
    global_batch_size: int, process_count: int, local_device_count: int, num_seeds: int = 1
) -> None:
    """A global batch must split evenly over the devices of the mesh's data axis (all of them,
    unless members of a run share them out: ``parallel.mesh_shape``)."""
    seed_devices, data_devices = parallel.mesh_shape(num_seeds, process_count, local_device_count)
    if global_batch_size < 1 or global_batch_size % data_devices:
        shared = f", {num_seeds} seeds on {seed_devices} of them" if seed_devices > 1 else ""
        raise InputError(
            f"batch_size={global_batch_size} cannot be shared by {process_count} process(es) with "
            f"{local_device_count} device(s) each{shared}: use a positive multiple of {data_devices}."
        )


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the training examples."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
    """Full batches in an epoch (a last, partial one is dropped: one compiled step serves all; at the
    paper's batch size none occurs); none at all is refused."""
    if num_examples < global_batch_size:
        raise InputError(
            f"batch_size={global_batch_size} is larger than the {num_examples} training examples: "
            "use a smaller batch_size."
        )
    return num_examples // global_batch_size


def eval_positions(
    num_examples: int, global_batch_size: int, process_index: int, process_count: int
) -> np.ndarray:
    """(steps, local batch) example positions of this process; positions >= num_examples are padding."""
    local = global_batch_size // process_count
    steps = -(-num_examples // global_batch_size)
    positions = np.arange(steps * global_batch_size).reshape(steps, global_batch_size)
    return positions[:, process_index * local : (process_index + 1) * local]
