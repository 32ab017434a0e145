"""tf.data batches: shapes, normalization, determinism, augmentation, exact evaluation, hosts."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from flax_resnets.data.order import check_batch_size
from flax_resnets.data.sources import load_dataset
from flax_resnets.data.tfdata import eval_batches, train_batches
from flax_resnets.errors import InputError


@pytest.fixture(scope="module", params=[("fashion_mnist", 1), ("cifar10", 3), ("cifar100", 3)])
def mock_dataset(request):
    name, channels = request.param
    with tfds.testing.mock_data(num_examples=40):
        dataset = load_dataset(name, download=False)
    assert dataset.channels == channels
    return dataset


def epoch(dataset, **kwargs):
    kwargs = {"global_batch_size": 8, "seed": 0, "epoch": 0, **kwargs}
    return list(train_batches(dataset.train, dataset, **kwargs))


def test_training_batches_have_the_model_input_shape(mock_dataset):
    batches = epoch(mock_dataset)
    assert len(batches) == 32 // 8
    for batch in batches:
        assert batch["image"].shape == (8, 32, 32, mock_dataset.channels)
        assert batch["image"].dtype == np.float32
        assert batch["label"].shape == (8,) and batch["label"].dtype == np.int32


def test_same_seed_same_batches_other_seed_or_epoch_other_batches(mock_dataset):
    first, again = epoch(mock_dataset), epoch(mock_dataset)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    for other in (epoch(mock_dataset, seed=1), epoch(mock_dataset, epoch=1)):
        assert not np.array_equal(first[0]["image"], other[0]["image"])


def test_augmentation_changes_pixels_but_never_labels(mock_dataset):
    augmented, plain = epoch(mock_dataset), epoch(mock_dataset, augment=False)
    for a, p in zip(augmented, plain, strict=True):
        np.testing.assert_array_equal(a["label"], p["label"])
        assert not np.allclose(a["image"], p["image"])


def test_an_epoch_visits_each_training_example_at_most_once(mock_dataset):
    seen = np.concatenate([b["image"] for b in epoch(mock_dataset, augment=False)])
    unique = np.unique(seen.reshape(len(seen), -1), axis=0)
    assert len(unique) == len(seen) == 32


def test_unaugmented_batches_are_the_normalized_examples(mock_dataset):
    batch = epoch(mock_dataset, augment=False)[0]
    pixels = batch["image"] * np.array(mock_dataset.std) + np.array(mock_dataset.mean)
    matches = [
        np.flatnonzero((np.abs(mock_dataset.train.images / 255.0 - p).max(axis=(1, 2, 3))) < 1e-5)
        for p in pixels
    ]
    for label, found in zip(batch["label"], matches, strict=True):
        assert len(found) >= 1 and mock_dataset.train.labels[found[0]] == label


def test_evaluation_covers_every_example_exactly_once_in_order(mock_dataset):
    split = mock_dataset.test  # 40 examples, batches of 16: the last one has 8 real rows
    batches = list(eval_batches(split, mock_dataset, global_batch_size=16))
    assert [b["image"].shape[0] for b in batches] == [16, 16, 16]
    assert [int(b["mask"].sum()) for b in batches] == [16, 16, 8]
    images = np.concatenate([b["image"][b["mask"]] for b in batches])
    labels = np.concatenate([b["label"][b["mask"]] for b in batches])
    expected = (split.images / 255.0 - np.array(mock_dataset.mean)) / np.array(mock_dataset.std)
    np.testing.assert_allclose(images, expected, atol=1e-5)
    np.testing.assert_array_equal(labels, split.labels)


def test_processes_yield_their_rows_of_the_same_global_batches(image_folder):
    dataset = load_dataset("image_folder", data_dir=str(image_folder))
    whole = list(train_batches(dataset.train, dataset, global_batch_size=8, seed=3, epoch=2))
    shares = [
        list(
            train_batches(
                dataset.train, dataset, global_batch_size=8, seed=3, epoch=2, process_index=p, process_count=2
            )
        )
        for p in (0, 1)
    ]
    for step, batch in enumerate(whole):
        joined = np.concatenate([shares[0][step]["image"], shares[1][step]["image"]])
        np.testing.assert_array_equal(joined, batch["image"])
    masks = [
        np.concatenate([b["mask"] for b in eval_batches(dataset.test, dataset, global_batch_size=8, **kw)])
        for kw in ({"process_index": 0, "process_count": 2}, {"process_index": 1, "process_count": 2})
    ]
    assert sum(int(m.sum()) for m in masks) == len(dataset.test)


def test_resuming_mid_epoch_gives_the_remaining_batches(image_folder):
    dataset = load_dataset("image_folder", data_dir=str(image_folder))
    whole = list(train_batches(dataset.train, dataset, global_batch_size=4, seed=0, epoch=1))
    rest = list(train_batches(dataset.train, dataset, global_batch_size=4, seed=0, epoch=1, start_step=2))
    assert len(rest) == len(whole) - 2
    for a, b in zip(whole[2:], rest, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])


def test_batch_sizes_that_cannot_be_shared_are_refused(image_folder):
    check_batch_size(16, process_count=2, local_device_count=4)
    with pytest.raises(InputError, match="batch_size=12 cannot be shared by 2 process.*multiple of 8"):
        check_batch_size(12, process_count=2, local_device_count=4)
    with pytest.raises(InputError, match="batch_size=0"):
        check_batch_size(0, process_count=1, local_device_count=1)
    dataset = load_dataset("image_folder", data_dir=str(image_folder))
    with pytest.raises(InputError, match="larger than the 24 training examples"):
        next(train_batches(dataset.train, dataset, global_batch_size=32, seed=0, epoch=0))


@pytest.mark.slow
def test_real_fashion_mnist_training_pixels_are_normalized(real_fashion_mnist):
    dataset = real_fashion_mnist
    pixels = np.concatenate(
        [b["image"] for b in eval_batches(dataset.train, dataset, global_batch_size=4096)]
    )[: len(dataset.train)]
    assert abs(pixels.mean()) < 0.05 and abs(pixels.std() - 1.0) < 0.05


def test_throughput_command_reports_images_per_second(image_folder):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flax_resnets",
            "input_pipeline",
            "--dataset=image_folder",
            f"--data_dir={image_folder}",
            "--batch_size=4",
            "--epochs=1",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "epoch 1: 24 images" in result.stdout and "images/s" in result.stdout
