"""The files of an image folder, ``ROOT/{train,test}/<label>/<image>``, in TFDS ``ImageFolder``'s
order (the same examples and validation cut), checked before any decoding: what is not an image
is skipped with one warning; an unreadable image, an empty class, a class only in ``test/`` or a
split without classes is refused in one line; the channels are 3 if any image has colour. An
optional ``ROOT/classes.txt`` names the classes, a line ``<label> <name>`` each (``3 Dress``).
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
CLASS_NAMES = "classes.txt"


@dataclasses.dataclass(frozen=True)
class FolderListing:
    labels: tuple[str, ...]
    examples: dict[str, list[tuple[str, int]]]  # split -> (image path, label index), in TFDS's order
    channels: int
    skipped: list[str]  # entries that are not images, for the warning


def list_image_folder(root: Path) -> FolderListing:
    """The images of ``root`` by split and label; refuses a folder that cannot be trained on."""
    skipped: list[str] = []
    found: dict[str, dict[str, list[str]]] = {}
    for split in SPLITS:
        split_dir = root / split
        skipped += [str(p) for p in split_dir.iterdir() if p.name.startswith(".") or not p.is_dir()]
        found[split] = {}
        for label_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
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
    names = class_names(root / CLASS_NAMES, listing.labels)
    return {**splits, "dataset": "image_folder", "class_names": names, "mean": mean, "std": std}


def class_names(path: Path, labels: tuple[str, ...]) -> tuple[str, ...]:
    """Each label's name from ``path`` (``classes.txt``: ``<label> <name>`` lines), or the labels
    themselves where there is no such file; one that does not name each label once is refused."""
    if not path.exists():
        return labels
    try:
        lines = [line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path} cannot be read ({error}): fix it or remove it.") from error
    names = {line[0]: line[-1].strip() for line in lines}
    if any(len(line) != 2 for line in lines) or len(names) != len(lines) or set(names) != set(labels):
        raise InputError(
            f"{path} must name each class folder once, a line '<label> <name>' each, for the labels "
            f"{', '.join(labels)}: fix it or remove it."
        )
    return tuple(names[label] for label in labels)
