"""The paper's augmentation: pad by 4 with zeros, crop a random 32x32 window, flip horizontally
with probability 1/2. The zeros are black when the images are padded before normalisation (the
paper's CIFAR cells), 0 in normalised units when after (its Fashion-MNIST cells: mid-grey under
(x - 0.5) / 0.5); the feed chooses the order, these functions only pad with zeros.

``pad_crop_flip`` augments one image inside the compiled step, keyed by a JAX random key (the
feed's: a function of seed, epoch, step and row). Validation images (augmented in the paper's
recipe) take their crops and flips from ``validation_draws`` instead, one per example as a
function of (seed, epoch) alone, so that they are the same whatever the batch size;
``pad_crop_flip_at`` applies given draws.
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
