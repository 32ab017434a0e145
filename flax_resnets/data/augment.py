"""The paper's augmentation (section 3.1): zero-pad by 4, crop a random 32x32 window, flip
horizontally with probability 1/2. Two implementations of one definition, for the two feeds:

* ``tf_pad_crop_flip``: a whole batch in tf.data, stateless draws keyed by (seed, epoch, step);
* ``pad_crop_flip``: one image inside the compiled JAX step, keyed by a JAX random key.

Their random numbers differ (TensorFlow's and JAX's generators), so one example's crop differs
between the feeds; the distribution of crops and flips is the same, which
``tests/test_augment.py`` checks by drawing many from each.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from flax_resnets.data.decoding import tensorflow

PAD = 4


def tf_pad_crop_flip(images: Any, seed: Any) -> Any:
    """Zero-pad by 4, crop a random 32x32 window, flip half the images (per example, whole batch at once).

    ``seed`` is a stateless seed: the same seed draws the same crops and flips.
    """
    tf = tensorflow()
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
    offsets = tf.random.stateless_uniform([batch, 2], seed=_two(seed, 0), maxval=2 * PAD + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(height)[None, :]
    cols = offsets[:, 1:] + tf.range(width)[None, :]
    cropped = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    flip = tf.random.stateless_uniform([batch], seed=_two(seed, 1)) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(cropped, axis=[2]), cropped)


def _two(seed: Any, salt: int) -> Any:
    """A stateless (2,) seed from a (seed, epoch, step) triple and a salt per random draw."""
    tf = tensorflow()
    seed = tf.cast(seed, tf.int64)
    return tf.stack([seed[0] * 1_000_003 + seed[1], seed[2] * 4 + salt])


def pad_crop_flip(image: jax.Array, key: jax.Array) -> jax.Array:
    """Zero-pad one (H, W, C) image by 4, crop a random HxW window, flip it with probability 1/2."""
    crop_key, flip_key = jax.random.split(key)
    padded = jnp.pad(image, ((PAD, PAD), (PAD, PAD), (0, 0)))
    offset = jax.random.randint(crop_key, (2,), 0, 2 * PAD + 1)
    cropped = jax.lax.dynamic_slice(padded, (offset[0], offset[1], 0), image.shape)
    return jnp.where(jax.random.bernoulli(flip_key), cropped[:, ::-1], cropped)
