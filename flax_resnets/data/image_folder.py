"""The files of an image folder, ``ROOT/{train,test}/<label>/<image>``, listed as TFDS's
``ImageFolder`` lists them, and checked before any decoding.

The order is TFDS's: label folders sorted, each one's images sorted, then each split shuffled
with ``random.Random(split)``; so a folder of PNG and JPEG images gives the same examples, in the
same order (and so the same validation cut) as TFDS's reader. Beyond it:

* hidden entries (``.DS_Store``, ``.ipynb_checkpoints/``), folders inside a class and files that
  are not images are skipped, with one warning that counts them;
* BMP, GIF and WebP images are read beside PNG and JPEG;
* every image is opened (its header only) before decoding starts: an unreadable file, an empty
  class, a class only in ``test/`` or a split without classes is refused in one line naming it;
* the channels come from all the images, not the first one: 3 if any image has colour, else 1
  (alpha channels are dropped).
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from flax_resnets.data.arrays import pixel_statistics
from flax_resnets.data.decoding import decode_image_files, decode_to_arrays, tensorflow, tf_decode_file
from flax_resnets.errors import InputError, warn

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
# What Pillow raises for a file it cannot read as an image, one over its decompression-bomb limit
# (about 179 million pixels) included.
UNREADABLE_IMAGE = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # Pillow's modes of single-channel images
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class FolderListing:
    labels: tuple[str, ...]
    examples: dict[str, list[tuple[str, int]]]  # split -> (image path, label index), in TFDS's order
    channels: int
    skipped: list[str]  # entries that are not images, for the warning


def visible_entries(folder: Path) -> list[Path]:
    return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))


def list_image_folder(root: Path) -> FolderListing:
    """The images of ``root`` by split and label; refuses a folder that cannot be trained on."""
    skipped: list[str] = []
    found: dict[str, dict[str, list[str]]] = {}
    for split in SPLITS:
        split_dir = root / split
        skipped += [str(p) for p in split_dir.iterdir() if p.name.startswith(".") or not p.is_dir()]
        found[split] = {}
        for label_dir in (p for p in visible_entries(split_dir) if p.is_dir()):
            images = []
            for entry in label_dir.iterdir():
                if entry.name.startswith(".") or entry.is_dir() or entry.suffix.lower() not in IMAGE_SUFFIXES:
                    skipped.append(str(entry))
                else:
                    images.append(str(entry))
            found[split][label_dir.name] = sorted(images)
        if not found[split]:
            raise InputError(f"{split_dir} has no class folders: put its images in {split_dir}/<label>/.")
    labels = tuple(sorted(found["train"]))
    for label, images in found["train"].items():
        if not images:
            raise InputError(f"{root / 'train' / label} holds no images: add some, or remove that class.")
    for label in found["test"]:
        if label not in found["train"]:
            raise InputError(
                f"{root / 'test' / label} is a class with no train/{label}/: it would never be trained; "
                "add its training images or remove it."
            )
    examples = {}
    for split in SPLITS:
        pairs = [(path, labels.index(label))
                 for label in sorted(found[split]) for path in found[split][label]]
        random.Random(split).shuffle(pairs)  # TFDS's ImageFolder order
        examples[split] = pairs
    paths = [path for split in SPLITS for path, _ in examples[split]]
    return FolderListing(labels, examples, image_channels(paths), skipped)


def image_channels(paths: list[str]) -> int:
    """3 if any image has colour, else 1; each file's header is read, and one that is not an
    image is refused, named."""
    colour = False
    for path in paths:
        try:
            with Image.open(path) as image:
                colour = colour or image.mode not in GRAY_MODES
        except UNREADABLE_IMAGE as error:
            raise unreadable(path, error) from error
    return 3 if colour else 1


def first_undecodable(paths: list[str]) -> InputError | None:
    """The refusal for the first of ``paths`` whose pixels cannot be decoded, if any."""
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
        except UNREADABLE_IMAGE as error:
            return unreadable(path, error)
    return None


def unreadable(path: str, error: BaseException) -> InputError:
    reason = (str(error).splitlines() or [type(error).__name__])[0]
    return InputError(f"{path} is not a readable image ({reason}): remove it or replace it with the image.")


def decode_image_folder(root: Path) -> dict[str, Any]:
    """Every image of the folder decoded (TensorFlow's decoders, as TFDS's ImageFolder) and resized."""
    tf = tensorflow()
    listing = list_image_folder(root)
    if listing.skipped:
        count, example = len(listing.skipped), listing.skipped[0]
        warn(f"skipped {count} entries of {root} that are not images (hidden, folders, others): {example}")

    def decode(path: Any, label: Any) -> tuple[Any, Any]:
        return tf_decode_file(path, listing.channels), label

    splits = {}
    for split, examples in listing.examples.items():
        paths = [path for path, _ in examples]
        labels = tf.constant([label for _, label in examples], tf.int64)
        ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), labels))
        try:
            decoded = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
            splits[split] = decode_to_arrays(decoded, listing.channels, f"decoding {root / split}")
        except tf.errors.OpError as error:
            raise first_undecodable(paths) or InputError(
                f"the images of {root / split} cannot be decoded ({error.message.splitlines()[0]})."
            ) from error
    mean, std = pixel_statistics(splits["train"].images)
    return {**splits, "dataset": "image_folder", "class_names": listing.labels, "mean": mean, "std": std}


def read_image_files(paths: list[str], channels: int) -> np.ndarray:
    """Image files as uint8 (N, 32, 32, ``channels``), decoded and resized as an image folder's
    images are (a grey image decoded into 3 channels is repeated, a colour one into 1 made grey);
    a file that is not a readable image is refused, named."""
    image_channels(paths)  # every header read first
    tf = tensorflow()
    try:
        return decode_image_files(paths, channels)
    except tf.errors.OpError as error:
        raise first_undecodable(paths) or InputError(
            f"the images cannot be decoded ({error.message.splitlines()[0]})."
        ) from error
