"""A dataset in memory (uint8 images, int32 labels per split), and the array file that holds one: the
decoded-image-folder cache and what ``data export`` writes, read with numpy alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from flax_resnets.errors import InputError
from flax_resnets.files import atomic_write

IMAGE_SIZE = 32
# What numpy raises for a truncated, empty, bit-flipped or foreign .npz file.
ARRAY_FILE_ERRORS = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


class UnreadableArraysError(InputError):
    """A file that is not (or no longer) a whole array file of this project."""


@dataclasses.dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, 32, 32, C) uint8
    labels: np.ndarray  # (N,) int32

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> Split:
        return Split(self.images[indices], self.labels[indices])

    def repeat_channels(self, channels: int) -> Split:
        """A greyscale split as ``channels`` identical channels."""
        return Split(np.repeat(self.images, channels, axis=-1), self.labels)


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    class_names: tuple[str, ...]
    mean: tuple[float, ...]  # of the training pixels per channel, scaled to [0, 1]
    std: tuple[float, ...]
    train: Split
    validation: Split
    test: Split
    # The per-channel (mean, std) the feeds normalize with (``images.normalization_constants``);
    # None: the pixels' own (mean, std).
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def normalization_constants(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.normalization or (self.mean, self.std)

    def repeat_channels(self, channels: int) -> Dataset:
        """A greyscale dataset as ``channels`` identical channels, its statistics alike."""
        return dataclasses.replace(
            self,
            mean=self.mean * channels,
            std=self.std * channels,
            train=self.train.repeat_channels(channels),
            validation=self.validation.repeat_channels(channels),
            test=self.test.repeat_channels(channels),
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return self.train.images.shape[-1]

    def summary(self) -> dict[str, Any]:
        """What run.json records of the data: its classes, channels, split sizes, pixel statistics
        and normalisation (checked against a resumed or evaluated run that lacks data.json)."""
        return {
            "class_names": list(self.class_names),
            "channels": self.channels,
            "mean": list(self.mean),  # of the training pixels
            "std": list(self.std),
            "normalization": [list(constants) for constants in self.normalization_constants()],
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data a run read: its classes, shapes and counts, and a hash of every
        split's pixels and labels (a run resumed on other data is refused with it)."""
        digest = hashlib.sha256()
        for split in (self.train, self.validation, self.test):
            digest.update(np.ascontiguousarray(split.images).data)
            digest.update(np.ascontiguousarray(split.labels, np.int32).data)
        return {
            "class_names": list(self.class_names),
            "image_shape": list(self.train.images.shape[1:]),
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
            "sha256": digest.hexdigest(),
        }


def pixel_statistics(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, in [0, 1] units (chunked, float64)."""
    total = np.zeros(images.shape[-1])
    total_sq = np.zeros(images.shape[-1])
    for start in range(0, len(images), 4096):
        chunk = images[start : start + 4096].reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
        total += chunk.sum(axis=0)
        total_sq += (chunk**2).sum(axis=0)
    count = images.size / images.shape[-1]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def save_arrays(path: Path, source: dict[str, Any], *, compressed: bool = False) -> None:
    """Write splits and metadata to ``path`` atomically: a crash never leaves half a file.
    Compressed files are for moving (Fashion-MNIST: 55 MB -> ~30 MB); the cache loads faster without."""
    arrays = {
        "train_images": source["train"].images,
        "train_labels": source["train"].labels,
        "test_images": source["test"].images,
        "test_labels": source["test"].labels,
        "class_names": np.array(source["class_names"]),
        "mean": np.array(source["mean"]),
        "std": np.array(source["std"]),
        "dataset": np.array(source["dataset"]),
    }
    save = np.savez_compressed if compressed else np.savez
    atomic_write(path, lambda f: save(f, **arrays), binary=True)


def load_arrays(path: Path, *, only: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The splits and metadata in an array file (``only``: just those keys, e.g. ``("dataset",)``);
    a damaged or foreign file raises ``UnreadableArraysError`` naming it."""
    readers = {
        "dataset": lambda arrays: str(arrays["dataset"]),
        "train": lambda arrays: Split(arrays["train_images"], arrays["train_labels"]),
        "test": lambda arrays: Split(arrays["test_images"], arrays["test_labels"]),
        "class_names": lambda arrays: tuple(str(name) for name in arrays["class_names"]),
        "mean": lambda arrays: tuple(float(m) for m in arrays["mean"]),
        "std": lambda arrays: tuple(float(s) for s in arrays["std"]),
    }
    try:
        with np.load(path) as arrays:
            return {key: read(arrays) for key, read in readers.items() if only is None or key in only}
    except ARRAY_FILE_ERRORS as error:
        raise UnreadableArraysError(
            f"{str(path)!r} cannot be read as an array file ({type(error).__name__}: {error})"
        ) from error
