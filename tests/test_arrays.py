"""Datasets held as arrays: statistics, identity, and the array files that carry them."""

import numpy as np
import pytest

from flax_resnets.data.arrays import (
    Dataset,
    Split,
    UnreadableArraysError,
    load_arrays,
    pixel_statistics,
    save_arrays,
)


def images(seed, n=5000, channels=3):
    return np.random.default_rng(seed).integers(0, 256, (n, 4, 4, channels), dtype=np.uint8)


def test_pixel_statistics_over_chunks_are_the_whole_arrays_mean_and_std():
    pixels = images(0)  # more than one chunk of 4096 images
    mean, std = pixel_statistics(pixels)
    scaled = pixels.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, scaled.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, scaled.std(axis=0), rtol=1e-9)


def dataset(train_images):
    split = Split(train_images, np.arange(len(train_images), dtype=np.int32) % 2)
    mean, std = pixel_statistics(train_images)
    return Dataset("image_folder", ("a", "b"), mean, std, split, split.take(np.arange(3)), split)


def test_one_changed_pixel_changes_the_fingerprint_not_the_summary_of_the_shapes():
    pixels = images(1, n=10)
    changed = pixels.copy()
    changed[7, 1, 2, 0] ^= 1
    first, second = dataset(pixels), dataset(changed)
    assert first.fingerprint() != second.fingerprint()
    assert first.fingerprint() == dataset(pixels.copy()).fingerprint()
    summary = first.summary()
    assert (summary["train"], summary["validation"], summary["test"], summary["channels"]) == (10, 3, 10, 3)
    assert summary["normalization"] == [list(first.mean), list(first.std)]  # no constants: the pixels' own


def test_greyscale_as_three_channels_repeats_pixels_and_statistics():
    grey = dataset(images(2, n=6, channels=1)).repeat_channels(3)
    assert grey.channels == 3 and (grey.train.images == grey.train.images[..., :1]).all()
    assert grey.mean == grey.mean[:1] * 3


def test_an_array_file_round_trips_and_a_damaged_one_is_named(tmp_path):
    split = Split(images(3, n=4), np.array([0, 1, 1, 0], np.int32))
    source = dict(train=split, test=split, class_names=("x", "y"), mean=(0.5,) * 3, std=(0.2,) * 3)
    path = tmp_path / "data.npz"
    save_arrays(path, {**source, "dataset": "cifar10"}, compressed=True)
    loaded = load_arrays(path)
    np.testing.assert_array_equal(loaded["train"].images, split.images)
    assert loaded["class_names"] == ("x", "y") and loaded["dataset"] == "cifar10"
    assert load_arrays(path, only=("dataset",)) == {"dataset": "cifar10"}
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UnreadableArraysError, match="cannot be read as an array file"):
        load_arrays(path)
