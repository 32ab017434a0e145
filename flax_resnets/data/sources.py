"""Datasets as in-memory uint8 arrays, 32x32, split as the paper's code split them (a seeded random
``validation_fraction`` of the training split held out), from TFDS, an ``image_folder`` (decoded once,
then cached) or an ``.npz`` that ``python -m flax_resnets data export`` wrote (numpy reads it).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import socket
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np

from flax_resnets.data.arrays import (
    IMAGE_SIZE,
    Dataset,
    Split,
    UnreadableArraysError,
    load_arrays,
    save_arrays,
)
from flax_resnets.data.image_folder import decode_image_folder
from flax_resnets.data.images import model_pixels, normalization_constants
from flax_resnets.errors import InputError, only_logged_errors, warn
from flax_resnets.progress import progress

# Per-channel mean and standard deviation of each training split's pixels, scaled to [0, 1]:
# the published figures (Fashion-MNIST: Xiao et al.'s 28x28 images; CIFAR: all 50,000 images).
TFDS_STATISTICS = {
    "fashion_mnist": ((0.2860406,), (0.3530242,)),
    "cifar10": ((0.4913997, 0.4821584, 0.4465309), (0.2470322, 0.2434851, 0.2615878)),
    "cifar100": ((0.5070751, 0.4865489, 0.4409178), (0.2673342, 0.2564384, 0.2761504)),
}
# What TFDS downloads each dataset from (its builders' URLs; a test checks them against the
# installed TFDS): where no connection opens, a download is refused at once instead of retried.
DOWNLOAD_URLS = {
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
}
# Each dataset whole, as TFDS gives it: classes, channels, training and test images (what tells a
# whole copy of it, in Table 1, and what its programs are compiled from ahead of time).
TFDS_SIZES = {
    "fashion_mnist": (10, 1, 60_000, 10_000),
    "cifar10": (10, 3, 50_000, 10_000),
    "cifar100": (100, 3, 50_000, 10_000),
}
DATASET_NAMES = (*TFDS_STATISTICS, "image_folder")
CACHE_FORMAT = 3  # bump when the array files change, so that old caches are not read (3: Pillow decodes)
# A small real sample shipped with the package, for the offline quickstart (see its README).
SAMPLE_FASHION_MNIST = Path(__file__).parent / "sample_data" / "fashion_mnist"


def require_dataset(name: str, validation_fraction: float) -> None:
    """A dataset this package reads, and a validation cut that leaves training images."""
    if name not in DATASET_NAMES:
        raise InputError(f"Unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}.")
    if not 0.0 <= validation_fraction < 1.0:
        raise InputError(f"validation_fraction must be in [0, 1), got {validation_fraction}.")


def load_dataset(
    name: str,
    *,
    data_dir: str | None = None,
    download: bool = True,
    validation_fraction: float = 0.2,
    split_seed: int = 0,
    train_images: int = 0,
) -> Dataset:
    """Dataset ``name`` in memory, split into train, validation and test (``train_images`` > 0: the
    most that many in each, ``split_sizes``); ``data_dir`` as typed (``~`` expanded, empty refused)."""
    require_dataset(name, validation_fraction)
    if data_dir is not None:
        if not str(data_dir).strip():
            raise InputError(
                "data_dir is empty (an unset variable?): pass the data's folder or file, or leave it out."
            )
        data_dir = os.path.expanduser(data_dir)
    if data_dir and is_array_file(data_dir):
        source = read_exported(name, Path(data_dir))
    elif name == "image_folder":
        source = read_image_folder(data_dir)
    else:
        source = read_tfds(name, data_dir=data_dir, download=download)
    full_train, test = source["train"], source["test"]
    order = np.random.default_rng(split_seed).permutation(len(full_train))
    sizes = split_sizes(len(full_train), len(test), validation_fraction, train_images)
    num_train, num_validation, num_test = sizes
    return Dataset(
        name=name,
        class_names=source["class_names"],
        mean=source["mean"],
        std=source["std"],
        train=full_train.take(order[:num_train]),
        validation=full_train.take(order[len(full_train) - num_validation :]),
        test=test.take(np.arange(num_test)),
    )


def split_sizes(
    num_images: int, num_test: int, validation_fraction: float, train_images: int = 0
) -> tuple[int, int, int]:
    """Training, validation and test images of a dataset of ``num_images`` training and ``num_test``
    test images: ``validation_fraction`` of the training images held out for validation, and where
    ``train_images`` > 0 (a quick check), at most that many in each split."""
    validation = int(round(num_images * validation_fraction))
    cap = train_images or max(num_images, num_test)
    return min(num_images - validation, cap), min(validation, cap), min(num_test, cap)


# config.image_channels: 0 keeps the data's channels; 3 repeats a greyscale image into 3 identical
# channels (the paper's Fashion-MNIST), and leaves colour images as they are.
IMAGE_CHANNELS = (0, 3)


def load_config_dataset(config: Any) -> Dataset:
    """``load_dataset`` with a run config's data fields, in ``config.image_channels`` channels and
    normalised as ``config.normalization`` says."""
    dataset = load_dataset(
        config.dataset,
        data_dir=config.data_dir,
        download=config.download,
        validation_fraction=config.validation_fraction,
        split_seed=config.split_seed,
        train_images=config.train_images,
    )
    if config.image_channels == 3 and dataset.channels == 1:
        dataset = dataset.repeat_channels(3)
    return normalized_as_configured(config, dataset)


def normalized_as_configured(config: Any, dataset: Dataset) -> Dataset:
    """``dataset`` normalised as ``config.normalization`` says (``images.normalization_constants``)."""
    constants = normalization_constants(config.normalization, dataset.channels, dataset.mean, dataset.std)
    return dataclasses.replace(dataset, normalization=constants)


def is_array_file(data_dir: str | Path) -> bool:
    """Whether ``data_dir`` names an exported array file (``.npz``, in any case) rather than a folder."""
    return Path(data_dir).suffix.lower() == ".npz"


@functools.cache
def tensorflow() -> Any:
    """Import TensorFlow for tf.data only: it must never see (and reserve memory on) a GPU."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no banner about CPU instructions
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # no notice about oneDNN's rounding
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
    return tf


def decode_to_arrays(ds: Any, channels: int, description: str = "decoding") -> Split:
    """A tf.data dataset of (image, label) pairs -> the model's uint8 (N, 32, 32, ``channels``)
    pixels and int32 labels, with a progress bar (``description``) where the dataset's size is known."""
    total = int(ds.cardinality())
    images, labels = [], []
    with progress(total if total >= 0 else None, description, "image", enabled=total != 0) as bar:
        for image_batch, label_batch in ds.batch(1024).prefetch(2).as_numpy_iterator():
            images += [model_pixels(image, channels) for image in image_batch]
            labels.append(label_batch.astype(np.int32))
            bar.update(len(label_batch))
    if not images:
        return Split(np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, channels), np.uint8), np.zeros((0,), np.int32))
    return Split(np.stack(images), np.concatenate(labels))


def read_tfds(name: str, *, data_dir: str | None, download: bool) -> dict[str, Any]:
    builder = tfds_builder(name, data_dir=data_dir, download=download)
    if not builder.is_prepared():
        builder.download_and_prepare()
    splits = {}
    for split in ("train", "test"):
        ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
        channels = builder.info.features["image"].shape[-1]
        splits[split] = decode_to_arrays(ds, channels, f"reading {name} {split}")
    mean, std = TFDS_STATISTICS[name]
    names = tuple(builder.info.features["label"].names)
    return {**splits, "dataset": name, "class_names": names, "mean": mean, "std": std}


def tfds_builder(name: str, *, data_dir: str | None, download: bool) -> Any:
    """TFDS's builder of ``name``, refused at once where its data is neither prepared in ``data_dir``
    nor to be downloaded (``download`` off, or its host unreachable)."""
    tensorflow()
    import tensorflow_datasets as tfds

    with only_logged_errors():  # TFDS warns of a half-made folder left by a failed download
        builder = tfds.builder(name, data_dir=data_dir)
        prepared = builder.is_prepared()
    if not prepared and not download:
        raise InputError(
            f"Dataset {name!r} is not prepared in {builder.data_dir} and downloading is off: "
            f"prepare it there on a machine with internet (tfds build {name} --data_dir=DIR) "
            "and pass data_dir=DIR, or set download=True, or train from a folder of images "
            "with dataset='image_folder'."
        )
    if not prepared:
        require_download_host(name, builder.data_dir)
    return builder


def require_download_host(name: str, data_dir: str) -> None:
    """Refuse the download at once where its host takes no connection on the port it goes to."""
    url = urllib.parse.urlsplit(DOWNLOAD_URLS[name])
    host, port = url.hostname, url.port or {"https": 443, "http": 80}[url.scheme]
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as error:
        raise InputError(
            f"Dataset {name!r} is not prepared in {data_dir} and its download host {host} cannot be "
            f"reached ({error.strerror or error}): prepare it with TFDS on a machine with internet "
            "and pass its data_dir, or train from a folder of images with dataset='image_folder'."
        ) from error


def read_exported(name: str, path: Path) -> dict[str, Any]:
    """A file written by ``python -m flax_resnets data export``: numpy only, no TensorFlow."""
    if not path.is_file():
        raise InputError(
            f"data_dir={str(path)!r} is not a file: export it first with "
            f"python -m flax_resnets data export --dataset={name} --out={path}."
        )
    try:
        source = load_arrays(path)
    except UnreadableArraysError as error:
        raise InputError(
            f"{error}: it is not (or no longer) a file written by python -m flax_resnets data export; "
            "export the dataset again."
        ) from error
    if source["dataset"] != name:
        raise InputError(
            f"{str(path)!r} holds {source['dataset']!r}, not {name!r}: set dataset={source['dataset']!r} "
            "or point data_dir at the right file."
        )
    return source


def cache_dir() -> Path:
    """Where decoded image folders are cached: $FLAX_RESNETS_CACHE, else ~/.cache/flax_resnets."""
    return Path(os.environ.get("FLAX_RESNETS_CACHE", Path.home() / ".cache" / "flax_resnets"))


def read_image_folder(data_dir: str | None) -> dict[str, Any]:
    root = Path(data_dir or "")
    if not data_dir or not (root / "train").is_dir() or not (root / "test").is_dir():
        raise InputError(
            f"dataset='image_folder' needs data_dir to be a folder with train/<label>/* and "
            f"test/<label>/* images; {str(root)!r} is not one (unzip your images there first)."
        )
    cached = cache_dir() / f"image_folder-v{CACHE_FORMAT}-{folder_fingerprint(root)}.npz"
    if cached.exists():
        try:
            return load_arrays(cached)
        except UnreadableArraysError as error:
            warn(f"the decoded-image cache {error}; decoding {root} again")
    source = decode_image_folder(root)
    try:
        save_arrays(cached, source)
    except OSError as error:
        warn(
            f"cannot write the decoded-image cache in {cached.parent} ({error.strerror or error}); "
            "set FLAX_RESNETS_CACHE to a writable folder to decode only once"
        )
    return source


def folder_fingerprint(root: Path) -> str:
    """Hash of every file's path, size and modification time, through symbolic links as the reader
    goes through them: changes whenever the images read do."""
    digest = hashlib.sha256(os.fsencode(root.resolve()))
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for filename in sorted(filenames):
            path = os.path.join(dirpath, filename)
            stat = os.stat(path) if os.path.exists(path) else os.lstat(path)  # a broken link too
            digest.update(os.fsencode(f"{path}:{os.path.realpath(path)}:{stat.st_size}:{stat.st_mtime_ns}"))
    return digest.hexdigest()[:20]
