"""The paper's augmentation: pad by 4 with zeros (black before normalisation, mid-grey after it: the
feed chooses), crop a random 32x32 window, flip horizontally with probability 1/2. Training images
draw from a key of (seed, epoch, step, row) (``pad_crop_flip``); validation images from
``validation_draws`` of (seed, epoch) alone, the same whatever the batch size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

PAD = 4
CROP_OFFSETS = 2 * PAD + 1  # a window's offset from the padded image's corner: 0 .. 2 * PAD
VALIDATION_STREAM = 0x76616C  # salt of the validation draws in a seed's randomness


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
