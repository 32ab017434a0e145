"""TensorFlow for reading the TFDS datasets only: their images, decoded by TFDS, brought to the
model's pixels as every image is (``images.model_pixels``) and held as uint8 arrays."""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from flax_resnets.data.arrays import IMAGE_SIZE, Split
from flax_resnets.data.images import model_pixels
from flax_resnets.progress import progress


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
