"""The paper's augmentation: pad by 4 with zeros, crop a random 32x32 window, flip horizontally
with probability 1/2. The zeros are black when the images are padded before normalisation (the
paper's CIFAR cells), 0 in normalised units when after (its Fashion-MNIST cells: mid-grey under
(x - 0.5) / 0.5); the feeds choose the order, these functions only pad with zeros.

Two implementations of one definition, for the two feeds:

* ``tf_pad_crop_flip``: a whole batch in tf.data, stateless draws keyed by (seed, epoch, step);
* ``pad_crop_flip``: one image inside the compiled JAX step, keyed by a JAX random key.

Their random numbers differ (TensorFlow's and JAX's generators), so one example's crop differs
between the feeds; the distribution of crops and flips is the same, which
``tests/test_augment.py`` checks by drawing many from each. Validation images (augmented in the
paper's recipe) take their crops and flips from ``validation_draws`` instead, one per example as a
function of (seed, epoch) alone, so that both feeds crop them alike whatever the batch size; the
``*_at`` functions apply given draws.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flax_resnets.data.decoding import tensorflow

PAD = 4
CROP_OFFSETS = 2 * PAD + 1  # a window's offset from the padded image's corner: 0 .. 2 * PAD
VALIDATION_STREAM = 0x76616C  # salt of the validation draws in a seed's randomness


def tf_pad_crop_flip(images: Any, seed: Any) -> Any:
    """Zero-pad by 4, crop a random window of the image's size, flip half the images (per
    example, whole batch at once). ``seed`` is a stateless seed: the same seed, the same draws."""
    tf = tensorflow()
    batch = tf.shape(images)[0]
    offsets = tf.random.stateless_uniform([batch, 2], seed=_two(seed, 0), maxval=CROP_OFFSETS, dtype=tf.int32)
    flips = tf.random.stateless_uniform([batch], seed=_two(seed, 1)) < 0.5
    return tf_pad_crop_flip_at(images, offsets, flips)


def tf_pad_crop_flip_at(images: Any, offsets: Any, flips: Any) -> Any:
    """Zero-pad a batch by 4, crop each image at its (row, column) offset, flip where ``flips``."""
    tf = tensorflow()
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
    rows = offsets[:, :1] + tf.range(height)[None, :]
    cols = offsets[:, 1:] + tf.range(width)[None, :]
    cropped = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    return tf.where(flips[:, None, None, None], tf.reverse(cropped, axis=[2]), cropped)


def _two(seed: Any, salt: int) -> Any:
    """A stateless (2,) seed from a (seed, epoch, step) triple and a salt per random draw."""
    tf = tensorflow()
    seed = tf.cast(seed, tf.int64)
    return tf.stack([seed[0] * 1_000_003 + seed[1], seed[2] * 4 + salt])


def pad_crop_flip(image: jax.Array, key: jax.Array) -> jax.Array:
    """Zero-pad one (H, W, C) image by 4, crop a random HxW window, flip it with probability 1/2."""
    crop_key, flip_key = jax.random.split(key)
    offset = jax.random.randint(crop_key, (2,), 0, CROP_OFFSETS)
    return pad_crop_flip_at(image, offset, jax.random.bernoulli(flip_key))


def pad_crop_flip_at(image: jax.Array, offset: jax.Array, flip: jax.Array) -> jax.Array:
    """Zero-pad one (H, W, C) image by 4, crop it at the (row, column) ``offset``, flip if ``flip``."""
    padded = jnp.pad(image, ((PAD, PAD), (PAD, PAD), (0, 0)))
    cropped = jax.lax.dynamic_slice(padded, (offset[0], offset[1], 0), image.shape)
    return jnp.where(flip, cropped[:, ::-1], cropped)


def validation_draws(num_examples: int, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Each validation example's crop offset (N, 2) and flip (N,) in epoch ``epoch`` of seed ``seed``."""
    rng = np.random.default_rng([seed, epoch, VALIDATION_STREAM])
    offsets = rng.integers(0, CROP_OFFSETS, (num_examples, 2), dtype=np.int32)
    return offsets, rng.random(num_examples) < 0.5
