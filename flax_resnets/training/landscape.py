"""The loss landscape around a checkpoint (Li et al. 2018): the loss on a grid of the plane
spanned by two random, filter-normalised directions through the trained parameters.

Filter normalisation: each direction is drawn from a standard normal, then every filter (a
convolution's output channel, a linear layer's output unit: the kernel's last axis) is scaled to
the norm of the same filter of the trained weights, so that the plot's scale means the same for
every layer and every network. The directions of biases and BatchNorm's scales and shifts are 0;
BatchNorm's running statistics stay as trained and the model is evaluated as at test time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from flax_resnets.data.arrays import Dataset
from flax_resnets.runtime import parallel
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


def normalised_images(dataset: Dataset, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` training images (0: all) as the model sees them at test time, and labels."""
    images = dataset.train.images[: count or None].astype(np.float32) / 255.0
    images = (images - np.asarray(dataset.mean, np.float32)) / np.asarray(dataset.std, np.float32)
    return images, dataset.train.labels[: count or None]


def loss_surface(
    graphdef: nnx.GraphDef,
    model_state: ModelState,
    directions: tuple[nnx.State, nnx.State],
    coordinates: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray,
    mesh: Mesh,
    *,
    batch_size: int = 256,
    progress: Callable[[int], Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean loss and accuracy over ``images`` at each (a, b) of ``coordinates`` (P, 2): the model
    with parameters ``params + a * d1 + b * d2``. The grid points are split over the devices."""
    devices = mesh.devices.size
    first, second = directions

    def point_sums(coefficients: jax.Array, batch_images: jax.Array, batch_labels: jax.Array) -> jax.Array:
        a, b = coefficients[0], coefficients[1]
        params = jax.tree.map(lambda w, d1, d2: w + a * d1 + b * d2, model_state["params"], first, second)
        model = nnx.merge(graphdef, params, model_state["batch_stats"])
        logits = model(batch_images, train=False)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch_labels).sum()
        return jnp.stack([loss, jnp.sum(jnp.argmax(logits, -1) == batch_labels)])

    sums_fn = jax.jit(
        jax.vmap(point_sums, in_axes=(0, None, None)),
        in_shardings=(parallel.batch_sharded(mesh), parallel.replicated(mesh), parallel.replicated(mesh)),
    )
    padded = np.concatenate([coordinates, np.zeros((-len(coordinates) % devices, 2))]).astype(np.float32)
    totals = np.zeros((len(padded), 2))
    for start in range(0, len(padded), devices):
        chunk = padded[start : start + devices]
        for first_image in range(0, len(images), batch_size):
            batch = slice(first_image, first_image + batch_size)
            totals[start : start + devices] += np.asarray(sums_fn(chunk, images[batch], labels[batch]))
        if progress is not None:
            progress(min(devices, len(coordinates) - start))
    totals = totals[: len(coordinates)] / len(images)
    return totals[:, 0], totals[:, 1]
