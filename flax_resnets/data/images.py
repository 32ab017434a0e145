"""The model's input, defined once: any image to the model's uint8 pixels (``model_pixels``: Pillow, 8-bit
grey or RGB, the model's channels, 32x32 bilinear, as the paper's torchvision pipeline), and pixels to
the model's floats under a run's normalisation (``model_inputs``): for the compiled steps, predict,
the loss landscape and the PyTorch twins alike.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from PIL import Image, UnidentifiedImageError

from flax_resnets.data.arrays import IMAGE_SIZE
from flax_resnets.errors import InputError, shown
from flax_resnets.progress import progress

# How images are normalised (``config.normalization``), per channel on pixels in [0, 1]:
# "plus_minus_one": (x - 0.5) / 0.5, to [-1, 1] (the paper's code); "data": by the training images'
# own mean and standard deviation (for TFDS datasets, their published values, which are those);
# "pytorch_cifar": the constants of the kuangliu/pytorch-cifar scripts (whose std is not
# CIFAR-10's: 0.2023 where the pixels' is 0.2470).
NORMALIZATIONS = ("plus_minus_one", "data", "pytorch_cifar")
PYTORCH_CIFAR_NORMALIZATION = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
Normalization = tuple[tuple[float, ...], tuple[float, ...]]  # per-channel (mean, std)
# What Pillow raises for a file it cannot read as an image, one over its decompression-bomb limit
# (about 179 million pixels) included.
UNREADABLE_IMAGE = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # single-channel modes
ARRAY_CHANNELS = (1, 3, 4)  # grey, RGB, RGBA (alpha dropped)


def model_pixels(image: Any, channels: int) -> np.ndarray:
    """One image (a file, a PIL image, or a uint8 (H, W) or (H, W, 1, 3 or 4) array) as the model's
    uint8 (32, 32, ``channels``) pixels; anything else is an ``InputError`` saying what is expected."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(os.path.expanduser(image), channels)
    pillow = eight_bit(image if isinstance(image, Image.Image) else from_array(image))
    pillow = pillow.convert("L" if channels == 1 else "RGB")
    if pillow.size != (IMAGE_SIZE, IMAGE_SIZE):
        pillow = pillow.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    return np.asarray(pillow, np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE, channels)


def from_array(array: Any) -> Image.Image:
    expected = "a uint8 (H, W) or (H, W, C) image with C of 1, 3 or 4, H and W at least 1"
    if not isinstance(array, np.ndarray):
        array = np.asarray(array)  # a JAX array, a nested list
    if array.dtype != np.uint8:
        raise InputError(f"expected {expected}; got {array.dtype} pixels: convert them to uint8 (0-255).")
    if array.ndim == 3 and array.shape[-1] in ARRAY_CHANNELS:
        array = array[..., 0] if array.shape[-1] == 1 else array[..., :3]
    if array.ndim != 2 and not (array.ndim == 3 and array.shape[-1] == 3) or 0 in array.shape:
        raise InputError(f"expected {expected}; got an array of shape {array.shape}.")
    return Image.fromarray(np.ascontiguousarray(array))


def eight_bit(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit grey or RGB: 16- and 32-bit grey scaled from their range, float grey
    rounded and clipped, palettes expanded, other colour spaces converted, alpha dropped."""
    if image.mode in ("L", "RGB"):
        return image
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image, np.float64)
        if image.mode.startswith("I"):
            values *= 255.0 / integer_white(image, values)
        return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8))
    if image.mode in ("1", "LA", "La"):
        return image.convert("L")
    return image.convert("RGB")  # P, PA, RGBA, RGBa, CMYK, YCbCr, LAB, HSV


TIFF_BITS_PER_SAMPLE = 258


def integer_white(image: Image.Image, values: np.ndarray) -> float:
    """White of an integer grey image: 65535 for Pillow's "I;16" modes; its signed 32-bit "I" holds
    16-bit PNGs (as Pillow before 13 opens them) and 32-bit TIFFs (white 2^31 - 1), told apart by
    the file's bits per sample where it says them, else by values beyond 16 bits."""
    if image.mode != "I":
        return 65535.0
    bits = getattr(image, "tag_v2", {}).get(TIFF_BITS_PER_SAMPLE)
    deep = max(np.atleast_1d(bits)) > 16 if bits is not None else values.size and values.max() > 65535
    return 2.0**31 - 1 if deep else 65535.0


def read_image(path: str | os.PathLike, channels: int) -> np.ndarray:
    """The image file ``path`` as the model's pixels; one that is no readable image is refused."""
    try:
        with Image.open(path) as image:
            image.load()
            return model_pixels(image, channels)
    except UNREADABLE_IMAGE as error:
        raise unreadable(path, error) from error


def read_images(
    paths: Sequence[str | os.PathLike], channels: int, description: str = "decoding"
) -> np.ndarray:
    """Image files as uint8 (N, 32, 32, ``channels``), decoded by as many threads as cores (Pillow
    decodes without the interpreter's lock), with a progress bar (``description``)."""
    images = np.zeros((len(paths), IMAGE_SIZE, IMAGE_SIZE, channels), np.uint8)
    workers = min(32, os.cpu_count() or 1)
    with (
        concurrent.futures.ThreadPoolExecutor(workers) as pool,
        progress(len(paths), description, "image", enabled=len(paths) > 0) as bar,
    ):
        chunk = 256
        starts = range(0, len(paths), chunk)

        def decode(start: int) -> list[np.ndarray]:
            return [read_image(path, channels) for path in paths[start : start + chunk]]

        for start, decoded in zip(starts, pool.map(decode, starts), strict=True):
            images[start : start + len(decoded)] = decoded
            bar.update(len(decoded))
    return images


def image_channels(paths: Sequence[str | os.PathLike]) -> int:
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


def unreadable(path: str | os.PathLike, error: BaseException) -> InputError:
    reason = (str(error).splitlines() or [type(error).__name__])[0]
    return InputError(
        f"{shown(path)} is not a readable image ({reason}): remove it or replace it with the image."
    )


def normalization_constants(
    normalization: str, channels: int, pixel_mean: Sequence[float], pixel_std: Sequence[float]
) -> Normalization:
    """The per-channel (mean, std) that ``normalization`` (a ``NORMALIZATIONS`` name) divides
    ``channels``-channel pixels by, given the training pixels' own mean and std."""
    if normalization == "plus_minus_one":
        return (0.5,) * channels, (0.5,) * channels
    if normalization == "pytorch_cifar":
        if channels != 3:
            raise InputError(
                f"normalization='pytorch_cifar' is for 3-channel images, and these have {channels}: "
                "use normalization='data' or 'plus_minus_one'."
            )
        return PYTORCH_CIFAR_NORMALIZATION
    return tuple(pixel_mean), tuple(pixel_std)


def model_inputs(pixels: Any, normalization: Normalization) -> Any:
    """uint8 pixels (..., C) (a numpy or JAX array) as the model's float32 input: (x / 255 - mean)
    / std per channel, looked up in a table of the 256 values worked out in float64, so that numpy,
    XLA (which divides its own way) and the twins' PyTorch give the same floats to the last bit."""
    mean, std = (np.asarray(constants, np.float64) for constants in normalization)
    table = ((np.arange(256)[:, None] / 255.0 - mean) / std).astype(np.float32)  # (256, C)
    channel = np.arange(table.shape[1])
    if isinstance(pixels, np.ndarray):
        return table[pixels, channel]
    return jnp.asarray(table)[pixels, channel]
