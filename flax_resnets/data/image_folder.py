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
  (alpha channels are dropped);
* the images are decoded by Pillow as every image that enters a model is (``data.images``), not
  by TensorFlow.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np

from flax_resnets.data.arrays import Split, pixel_statistics
from flax_resnets.data.images import image_channels, read_images
from flax_resnets.errors import InputError, shown, warn

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
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
        pairs = [
            (path, labels.index(label)) for label in sorted(found[split]) for path in found[split][label]
        ]
        random.Random(split).shuffle(pairs)  # TFDS's ImageFolder order
        examples[split] = pairs
    paths = [path for split in SPLITS for path, _ in examples[split]]
    return FolderListing(labels, examples, image_channels(paths), skipped)


def decode_image_folder(root: Path) -> dict[str, Any]:
    """Every image of the folder as the model's pixels (``images.read_images``: Pillow, resized to
    32x32 with its bilinear filter), in TFDS's order."""
    listing = list_image_folder(root)
    if listing.skipped:
        count, example = len(listing.skipped), shown(listing.skipped[0])
        warn(
            f"skipped {count} entries of {shown(root)} that are not images (hidden, folders, others): "
            f"{example}"
        )
    splits = {}
    for split, examples in listing.examples.items():
        images = read_images(
            [path for path, _ in examples], listing.channels, f"decoding {shown(root / split)}"
        )
        splits[split] = Split(images, np.array([label for _, label in examples], np.int32))
    mean, std = pixel_statistics(splits["train"].images)
    return {**splits, "dataset": "image_folder", "class_names": listing.labels, "mean": mean, "std": std}
