"""Reading datasets into memory: TFDS (mocked), image folders, splits, statistics, bad input."""

import json
import os
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import write_image_folder
from PIL import Image
from run_helpers import mock_tfds

from flax_resnets.data import sources
from flax_resnets.data.sources import load_dataset
from flax_resnets.errors import InputError
from flax_resnets.runs.metrics import read_jsonl


@pytest.mark.parametrize(
    "name, channels, classes", [("fashion_mnist", 1, 10), ("cifar10", 3, 10), ("cifar100", 3, 100)]
)
def test_tfds_datasets_read_resized_uint8_arrays_with_their_info(name, channels, classes):
    with mock_tfds(20):
        dataset = load_dataset(name, download=False, validation_fraction=0.25)
    assert dataset.num_classes == classes and dataset.channels == channels
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (15, 5, 20)
    for split in (dataset.train, dataset.validation, dataset.test):
        assert split.images.shape[1:] == (32, 32, channels) and split.images.dtype == np.uint8
        assert split.labels.dtype == np.int32 and 0 <= split.labels.min() <= split.labels.max() < classes
    assert len(dataset.mean) == len(dataset.std) == channels


def test_tfds_validation_is_a_seeded_random_subset_of_the_training_split():
    """As the paper's code cut it (and the PyTorch trainer of ``parity --train`` does): a permutation
    seeded by split_seed, its last 20% held out; not the split's tail."""
    with mock_tfds(20):
        source = sources.read_tfds("cifar10", data_dir=None, download=False)["train"]
        split = load_dataset("cifar10", download=False, validation_fraction=0.2)
        other = load_dataset("cifar10", download=False, validation_fraction=0.2, split_seed=1)
    order = np.random.default_rng(0).permutation(20)
    np.testing.assert_array_equal(split.train.images, source.images[order[:16]])
    np.testing.assert_array_equal(split.validation.images, source.images[order[16:]])
    assert not np.array_equal(split.validation.images, source.images[16:])
    assert not np.array_equal(other.validation.images, split.validation.images)


def test_a_symlinked_class_folder_is_fingerprinted_through_the_link(tmp_path):
    """The decoded-image cache is keyed by what the reader reads, behind links too."""
    images = write_image_folder(tmp_path / "real")
    linked = tmp_path / "linked"
    (linked / "test").mkdir(parents=True)
    (linked / "train").symlink_to(images / "train", target_is_directory=True)
    for label in ("class_0", "class_1", "class_2"):
        (linked / "test" / label).symlink_to(images / "test" / label, target_is_directory=True)
    before = sources.folder_fingerprint(linked)
    first = load_dataset("image_folder", data_dir=str(linked))
    changed = images / "train" / "class_0" / "0000.png"
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))
    assert sources.folder_fingerprint(linked) != before
    again = load_dataset("image_folder", data_dir=str(linked))
    assert again.fingerprint()["sha256"] != first.fingerprint()["sha256"]


def test_image_folder_split_is_shuffled_with_the_seed_and_keeps_every_class(image_folder):
    dataset = load_dataset("image_folder", data_dir=str(image_folder), validation_fraction=0.2)
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (24, 6, 12)
    assert dataset.class_names == ("class_0", "class_1", "class_2")
    assert set(dataset.validation.labels) == {0, 1, 2}
    assert dataset.train.images.shape == (24, 32, 32, 3)  # 28x28 resized
    again = load_dataset("image_folder", data_dir=str(image_folder), validation_fraction=0.2)
    np.testing.assert_array_equal(again.validation.images, dataset.validation.images)
    other = load_dataset("image_folder", data_dir=str(image_folder), validation_fraction=0.2, split_seed=1)
    assert not np.array_equal(other.validation.images, dataset.validation.images)
    # A quick check: the same split, each part cut to at most 5 images.
    first = load_dataset("image_folder", data_dir=str(image_folder), validation_fraction=0.2, train_images=5)
    np.testing.assert_array_equal(first.train.images, dataset.train.images[:5])
    np.testing.assert_array_equal(first.validation.images, dataset.validation.images[-5:])
    np.testing.assert_array_equal(first.test.images, dataset.test.images[:5])


def test_image_folder_labels_follow_the_folders(image_folder):
    dataset = load_dataset("image_folder", data_dir=str(image_folder), validation_fraction=0.0)
    # The generator makes class k's pixels lie in [60k, 60k + 60): brightness identifies the folder.
    brightness = dataset.train.images.reshape(len(dataset.train), -1).mean(axis=1)
    np.testing.assert_array_equal(dataset.train.labels, (brightness // 60).astype(int))


def test_image_folder_statistics_are_those_of_its_training_pixels(image_folder):
    dataset = load_dataset("image_folder", data_dir=str(image_folder), validation_fraction=0.0)
    pixels = dataset.train.images.astype(np.float64) / 255.0
    np.testing.assert_allclose(dataset.mean, pixels.mean(axis=(0, 1, 2)), rtol=1e-9)
    np.testing.assert_allclose(dataset.std, pixels.std(axis=(0, 1, 2)), rtol=1e-9)


def test_image_folder_is_decoded_once_then_read_from_the_cache(image_folder, monkeypatch, isolated_cache):
    first = load_dataset("image_folder", data_dir=str(image_folder))
    assert len(list(isolated_cache.glob("image_folder-*.npz"))) == 1

    def no_decoding(root):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(sources, "decode_image_folder", no_decoding)
    cached = load_dataset("image_folder", data_dir=str(image_folder))
    np.testing.assert_array_equal(cached.train.images, first.train.images)
    assert cached.mean == first.mean and cached.class_names == first.class_names

    (image_folder / "train" / "class_0" / "0000.png").unlink()  # the folder changed: decode again
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset("image_folder", data_dir=str(image_folder))


def test_image_folder_of_greyscale_images_of_other_sizes(tmp_path):
    from conftest import write_image_folder

    root = write_image_folder(tmp_path / "grey", mode="L", size=(40, 36), classes=2)
    dataset = load_dataset("image_folder", data_dir=str(root))
    assert dataset.train.images.shape[1:] == (32, 32, 1) and dataset.num_classes == 2


def test_unknown_dataset_and_bad_fraction_are_refused():
    with pytest.raises(InputError, match="Unknown dataset 'cifar11'.*cifar10.*image_folder"):
        load_dataset("cifar11")
    with pytest.raises(InputError, match="validation_fraction"):
        load_dataset("cifar10", validation_fraction=1.0)


def test_image_folder_without_train_and_test_is_refused(tmp_path):
    with pytest.raises(InputError, match="train/<label>"):
        load_dataset("image_folder", data_dir=str(tmp_path))
    with pytest.raises(InputError, match="train/<label>"):
        load_dataset("image_folder", data_dir=None)


def test_unprepared_tfds_dataset_without_download_says_how_to_provide_it(tmp_path):
    with pytest.raises(InputError, match="not prepared.*data_dir.*image_folder"):
        load_dataset("cifar10", data_dir=str(tmp_path), download=False)


def test_unreachable_download_host_fails_at_once_with_the_fix(tmp_path, monkeypatch):
    # A name that never resolves.
    monkeypatch.setitem(sources.DOWNLOAD_URLS, "cifar10", "https://no-such-host.invalid/c.tar.gz")
    with pytest.raises(InputError, match="no-such-host.invalid cannot be reached.*image_folder"):
        load_dataset("cifar10", data_dir=str(tmp_path), download=True)


@pytest.mark.parametrize("name", sorted(sources.DOWNLOAD_URLS))
def test_the_reachability_check_asks_the_host_and_scheme_the_installed_tfds_downloads_from(name):
    """The table is ours; the URLs are TFDS's builders' (a URL a builder no longer names would make
    the check ask the wrong host or port)."""
    import inspect

    source = inspect.getsource(type(tfds.builder(name)))
    url = sources.DOWNLOAD_URLS[name]
    assert url in source or url.rstrip("/") in source


@pytest.mark.slow
def test_a_data_dir_is_read_as_typed_with_its_tilde_and_an_empty_one_is_refused(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "images", classes=2, train_per_class=5)
    monkeypatch.setenv("HOME", str(tmp_path))
    dataset = load_dataset("image_folder", data_dir="~/images", validation_fraction=0.0)
    assert len(dataset.train) == 10
    with pytest.raises(InputError, match="data_dir is empty"):
        load_dataset("image_folder", data_dir="")


@pytest.mark.slow
def test_a_small_resnet_learns_real_fashion_mnist_from_10000_images(fashion_mnist_subset, tmp_path):
    from configs import quickstart
    from flax_resnets.training.loop import train_and_evaluate

    # 1,250 training images per class: 10,000 to train on, 2,500 held out for validation.
    # The quickstart's recipe and model (ResNet-8: batch 32, lr 0.05, wd 5e-4) for 1 epoch: 312
    # steps take it from 10% (chance) to 75.7% validation and 74.9% test accuracy (a 2-core CPU).
    config = quickstart.get_config()
    config.data_dir = str(fashion_mnist_subset)
    config.num_epochs = 1

    started = time.perf_counter()
    result = train_and_evaluate(config, tmp_path / "run")
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    seconds = time.perf_counter() - started
    print(f"resnet8 on 10,000 Fashion-MNIST images: {seconds:.0f}s, {records[-1]}, {result}")
    assert records[-1]["val_accuracy"] >= 0.70
    assert result["num_examples"] == 2000 and result["test_accuracy"] >= 0.70
    data = json.loads((tmp_path / "run" / "run.json").read_text())["data"]
    assert (data["train"], data["validation"], data["test"]) == (10_000, 2_500, 2_000)
    # Xiao et al.'s figures for the 28x28 originals; resizing to 32x32 smooths the spread a little.
    assert data["mean"][0] == pytest.approx(0.2860406, abs=0.005)
    assert data["std"][0] == pytest.approx(0.3530242, abs=0.02)
