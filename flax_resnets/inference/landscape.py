"""The loss landscape around a checkpoint (Li et al. 2018): the loss on a plane of two random directions,
each filter scaled to the norm of the weights' same filter (biases and BatchNorm still), every point
evaluated by the run's own evaluation program on training images its feed makes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from flax_resnets.data.arrays import Dataset
from flax_resnets.runtime import members, parallel
from flax_resnets.training import programs
from flax_resnets.training.evaluate import evaluate_split
from flax_resnets.training.steps import ModelState


def filter_normalised_direction(params: nnx.State, key: jax.Array) -> nnx.State:
    """A random direction in parameter space, each filter as long as the weights' same filter;
    zero for one-dimensional parameters (biases, BatchNorm's scale and shift)."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))

    def direction(weights: jax.Array, leaf_key: jax.Array) -> jax.Array:
        if weights.ndim <= 1:
            return jnp.zeros_like(weights)
        drawn = jax.random.normal(leaf_key, weights.shape, weights.dtype)
        axes = tuple(range(weights.ndim - 1))  # all but the filters' axis
        norm = lambda x: jnp.sqrt(jnp.sum(jnp.square(x), axis=axes, keepdims=True))  # noqa: E731
        return drawn * norm(weights) / norm(drawn)

    return jax.tree.unflatten(treedef, [direction(w, k) for w, k in zip(leaves, keys, strict=True)])


def loss_surface(
    config: ml_collections.ConfigDict,
    dataset: Dataset,
    model_state: ModelState,
    directions: tuple[nnx.State, nnx.State],
    coordinates: np.ndarray,
    *,
    progress: Callable[[int], Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss and accuracy over ``dataset``'s training images at each (a, b) of ``coordinates``:
    the model (``model_state``, one member) with parameters ``params + a * d1 + b * d2``."""
    config = config.copy_and_resolve_references()
    config.update(num_seeds=1, batch_size=1)  # one model; nothing is trained (any split is an epoch)
    mesh = parallel.make_mesh()
    program = programs.build_programs(config, dataset, mesh, shapes_only=True)
    first, second = directions
    losses, accuracies = [], []
    for a, b in coordinates.tolist():
        params = jax.tree.map(
            lambda w, d1, d2, a=a, b=b: w + a * d1 + b * d2, model_state["params"], first, second
        )
        point = {"params": params, "batch_stats": model_state["batch_stats"]}
        (result,) = evaluate_split(
            program.evaluate, parallel.place_state(members.join([point]), mesh), program.feed, "train"
        )
        losses.append(result["loss"])
        accuracies.append(result["accuracy"])
        if progress is not None:
            progress(1)
    return np.array(losses), np.array(accuracies)
