"""TensorFlow for decoding only: images read by tf.data, resized to 32x32, held as uint8 arrays."""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from flax_resnets.data.arrays import IMAGE_SIZE, Split


@functools.cache
def tensorflow() -> Any:
    """Import TensorFlow for tf.data only: it must never see (and reserve memory on) a GPU."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no banner about CPU instructions
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # no notice about oneDNN's rounding
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
    return tf


def decode_to_arrays(ds: Any, channels: int) -> Split:
    """A tf.data dataset of (image, label) pairs -> uint8 arrays resized to 32x32."""
    tf = tensorflow()

    def resize(image, label):
        image = tf.ensure_shape(image, [None, None, channels])
        if_resized = tf.image.resize(image, (IMAGE_SIZE, IMAGE_SIZE), antialias=True)
        image = tf.cond(
            tf.reduce_all(tf.shape(image)[:2] == IMAGE_SIZE),
            lambda: image,
            lambda: tf.cast(tf.clip_by_value(tf.round(if_resized), 0, 255), tf.uint8),
        )
        return tf.ensure_shape(image, [IMAGE_SIZE, IMAGE_SIZE, channels]), tf.cast(label, tf.int32)

    ds = ds.map(resize, num_parallel_calls=tf.data.AUTOTUNE).batch(4096).prefetch(2)
    images, labels = [], []
    for image_batch, label_batch in ds.as_numpy_iterator():
        images.append(image_batch)
        labels.append(label_batch)
    if not images:
        return Split(np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, channels), np.uint8), np.zeros((0,), np.int32))
    return Split(np.concatenate(images), np.concatenate(labels))
