"""The paper's augmentation in the compiled step draws every crop and flip uniformly, each a true
crop of the zero-padded image."""

import jax
import numpy as np

from flax_resnets.data.augment import PAD, pad_crop_flip
from flax_resnets.data.feeds import example_key

SIZE = 32
DRAWS = 4000
OUTCOMES = (2 * PAD + 1) ** 2 * 2  # row offset, column offset, flip
# Pixel r, c holds r * SIZE + c + 1: every pixel is unique and none is 0, the padding's value.
IMAGE = (np.arange(SIZE * SIZE, dtype=np.float32) + 1).reshape(SIZE, SIZE, 1)


def crop(offset_row, offset_col, flip):
    padded = np.pad(IMAGE, ((PAD, PAD), (PAD, PAD), (0, 0)))
    window = padded[offset_row : offset_row + SIZE, offset_col : offset_col + SIZE]
    return window[:, ::-1] if flip else window


def outcome(augmented):
    """(row offset, column offset, flip) of one augmented image, checked against the crop they name.

    Pixels (16, 15) and (16, 16) always come from the image itself; their order tells the flip,
    and the value of the one that is not mirrored tells the window's position."""
    left, right = augmented[16, 15, 0], augmented[16, 16, 0]
    flip = bool(left > right)
    row, col = divmod(int(left if flip else right) - 1, SIZE)
    drawn = (row - 16 + PAD, col - 16 + PAD, flip)
    np.testing.assert_array_equal(augmented, crop(*drawn))
    return drawn


def counts(images):
    table = np.zeros((2 * PAD + 1, 2 * PAD + 1, 2), np.int64)
    for image in images:
        table[outcome(image)] += 1
    return table


def jax_draws():
    draws = np.stack([np.full(DRAWS, 3), np.full(DRAWS, 7), np.arange(DRAWS)], axis=1)
    keys = jax.vmap(lambda draw: example_key(0, draw))(draws)
    return np.asarray(jax.vmap(pad_crop_flip, in_axes=(None, 0))(IMAGE, keys))


def chi_square_limit(dof):
    """Far in the tail of the chi-square distribution (about 5 standard deviations): with fixed
    seeds the verdict is fixed, and only a real difference of distributions crosses it."""
    return dof + 5 * np.sqrt(2 * dof)


def test_every_crop_and_flip_is_drawn_uniformly():
    table = counts(jax_draws())
    expected = DRAWS / OUTCOMES
    assert table.min() > 0
    assert ((table - expected) ** 2 / expected).sum() < chi_square_limit(OUTCOMES - 1)
