"""An independent PyTorch trainer for ``parity --train``, written the way the paper's notebooks train
(docs/recipe.md) and sharing nothing with the project's trainer but the model's input function
(``data.images``) and the convention of which images are cut for validation (TFDS ImageFolder's
order, then the ``split_seed`` permutation), both written again here where they are conventions.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import random
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from flax_resnets.data.images import Normalization, model_inputs, normalization_constants
from flax_resnets.twins.torch_models import sgd, torch_model

SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclasses.dataclass
class Recipe:
    model: str
    epochs: int
    batch_size: int
    learning_rate: float
    momentum: float
    weight_decay: float
    validation_fraction: float
    split_seed: int
    train_images: int  # 0: all
    schedule: str = "cosine_epochs"  # CosineAnnealingLR stepped per epoch, or per batch ("cosine")
    cosine_period_epochs: int = 50  # T_max in epochs; 0: the whole run
    normalization: str = "plus_minus_one"  # or "data", or "pytorch_cifar" (kuangliu's constants)
    image_channels: int = 0  # 3: greyscale images as 3 identical channels
    pad_after_normalization: bool = False  # crops padded with 0 after normalising, not black
    augment_validation: bool = True  # validation images cropped and flipped like training's


@functools.lru_cache(maxsize=2)  # read once for all seeds
def read_split(root: Path, split: str, image_channels: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every image of ``root/split`` as uint8 (N, 32, 32, C), its labels and the class names."""
    labels = sorted(p.name for p in (root / split).iterdir() if p.is_dir() and not p.name.startswith("."))
    examples = [
        (path, label)
        for label in labels
        for path in sorted((root / split / label).iterdir())
        if path.suffix.lower() in SUFFIXES and not path.name.startswith(".")
    ]
    random.Random(split).shuffle(examples)
    modes = set()
    for path, _ in examples:
        with Image.open(path) as image:
            modes.add(image.mode)
    mode = "L" if modes <= {"L", "1"} and image_channels != 3 else "RGB"
    arrays = []
    for path, _ in examples:
        with Image.open(path) as image:
            image = image.convert(mode)
            if image.size != (32, 32):
                image = image.resize((32, 32), Image.BILINEAR)
            arrays.append(np.asarray(image, np.uint8).reshape(32, 32, -1))
    names = sorted({label for _, label in examples})
    return np.stack(arrays), np.array([names.index(label) for _, label in examples]), names


class Images(torch.utils.data.Dataset):
    """uint8 images (``pixels``) as normalised inputs, channels first; ``augment``: RandomCrop(32,
    padding=4) and RandomHorizontalFlip drawn from torch's generator at every read, as torchvision's
    are, padded black (``model_inputs`` of 0) or with 0 (``pad_after_normalization``)."""

    def __init__(
        self,
        pixels: np.ndarray,
        labels: np.ndarray,
        normalization: Normalization,
        *,
        augment: bool,
        pad_after_normalization: bool = False,
    ):
        self.pixels, self.normalization = pixels, normalization
        self.images = torch.from_numpy(model_inputs(pixels, normalization)).permute(0, 3, 1, 2)
        self.labels = torch.from_numpy(labels).long()
        black = torch.from_numpy(model_inputs(np.zeros(pixels.shape[-1], np.uint8), normalization))
        self.padding = torch.zeros_like(black) if pad_after_normalization else black
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        if self.augment:
            padded = self.padding[:, None, None].repeat(1, 40, 40)
            padded[:, 4:36, 4:36] = image
            top, left = torch.randint(0, 9, (2,)).tolist()
            image = padded[:, top : top + 32, left : left + 32]
            if torch.rand(1).item() < 0.5:
                image = image.flip(-1)
        return image, self.labels[index]


def accuracy(model: nn.Module, data: Images) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in torch.utils.data.DataLoader(data, batch_size=256):
            correct += (model(images).argmax(-1) == labels).sum().item()
    return correct / len(data)


def split(root: Path, recipe: Recipe) -> tuple[Images, Images, Images, int, int]:
    """(training, validation, test) data, channels and classes: the validation cut after a
    permutation by ``split_seed``; ``train_images`` > 0: at most that many in each split (the
    first training and test images, the last of those held out)."""
    images, labels, names = read_split(root, "train", recipe.image_channels)
    test_images, test_labels, _ = read_split(root, "test", recipe.image_channels)
    order = np.random.default_rng(recipe.split_seed).permutation(len(labels))
    cut = len(order) - int(round(len(order) * recipe.validation_fraction))
    kept = slice(recipe.train_images or None)
    train, validation = order[:cut][kept], order[cut:][::-1][kept][::-1]
    test_images, test_labels = test_images[kept], test_labels[kept]
    channels = images.shape[-1]
    pixels = images.reshape(-1, channels) / 255.0
    normalization = normalization_constants(
        recipe.normalization, channels, pixels.mean(axis=0), pixels.std(axis=0)
    )
    padding = {"pad_after_normalization": recipe.pad_after_normalization}
    augmented = recipe.augment_validation
    return (
        Images(images[train], labels[train], normalization, augment=True, **padding),
        Images(images[validation], labels[validation], normalization, augment=augmented, **padding),
        Images(test_images, test_labels, normalization, augment=False),
        images.shape[-1],
        len(names),
    )


def train_and_test(root: Path, recipe: Recipe, seed: int) -> dict[str, float]:
    """One run: {"test_accuracy", "best_val_accuracy", "final_train_loss", "final_train_accuracy"}
    (the last epoch's means)."""
    torch.manual_seed(seed)
    training, held_out, testing, channels, classes = split(root, recipe)
    model = torch_model(recipe.model, channels, classes)
    loader = torch.utils.data.DataLoader(training, batch_size=recipe.batch_size, shuffle=True)
    per_batch = recipe.schedule == "cosine"
    period = recipe.cosine_period_epochs or recipe.epochs
    optimizer, annealing = sgd(
        model,
        learning_rate=recipe.learning_rate,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        cosine_steps=period * len(loader) if per_batch else period,
    )
    best, best_accuracy, loss_sum, correct = None, -1.0, 0.0, 0
    for epoch in range(recipe.epochs):
        model.train()
        loss_sum, correct, count = 0.0, 0, 0
        interval = 1 if sys.stderr.isatty() else 30  # a log file gets a line now and then
        batches = tqdm(loader, desc=f"theirs epoch {epoch + 1}/{recipe.epochs}", mininterval=interval)
        for images, labels in batches:
            optimizer.zero_grad()
            logits = model(images)
            loss = nn.functional.cross_entropy(logits, labels)
            loss.backward()
            optimizer.step()
            if per_batch:
                annealing.step()
            loss_sum, count = loss_sum + loss.item() * len(labels), count + len(labels)
            correct += (logits.argmax(-1) == labels).sum().item()
        val_accuracy = accuracy(model, held_out) if len(held_out) else 0.0
        if best is None or val_accuracy > best_accuracy:  # strictly greater: the earliest of ties
            best, best_accuracy = copy.deepcopy(model.state_dict()), val_accuracy
        if not per_batch:
            annealing.step()
    model.load_state_dict(best)
    return {
        "test_accuracy": accuracy(model, testing),
        "best_val_accuracy": best_accuracy,
        "final_train_loss": loss_sum / max(count, 1),
        "final_train_accuracy": correct / max(count, 1),
    }
