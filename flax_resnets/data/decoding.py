"""TensorFlow for decoding only: images read by tf.data, resized to 32x32, held as uint8 arrays.

``decode_image_files`` is that path for any list of image files (what a trained model is asked
to classify), so that they are decoded and resized exactly as its training images were."""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from flax_resnets.data.arrays import IMAGE_SIZE, Split
from flax_resnets.progress import progress


@functools.cache
def tensorflow() -> Any:
    """Import TensorFlow for tf.data only: it must never see (and reserve memory on) a GPU."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no banner about CPU instructions
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # no notice about oneDNN's rounding
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
    return tf


def tf_decode_file(path: Any, channels: int) -> Any:
    """Inside tf.data: an image file decoded to ``channels`` (1 or 3) channels, at its own size."""
    tf = tensorflow()
    contents = tf.io.read_file(path)
    # PNG and JPEG convert to the wanted channels themselves; BMP, GIF and WebP decode to RGB
    # (a greyscale image's first channel is the image).
    native = tf.logical_or(tf.io.is_jpeg(contents), tf.strings.substr(contents, 0, 4) == b"\x89PNG")
    return tf.cond(
        native,
        lambda: tf.io.decode_image(contents, channels=channels, expand_animations=False),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False)[..., :channels],
    )


def decode_image_files(paths: list[str], channels: int) -> np.ndarray:
    """Image files as uint8 (N, 32, 32, ``channels``), decoded and resized as an image folder's."""
    tf = tensorflow()
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string))
    decoded = ds.map(lambda path: (tf_decode_file(path, channels), 0), num_parallel_calls=tf.data.AUTOTUNE)
    return decode_to_arrays(decoded, channels).images


def resize_arrays(images: list[np.ndarray]) -> np.ndarray:
    """uint8 (H, W, C) images of any size as (N, 32, 32, C), resized as an image folder's."""
    tf = tensorflow()
    channels = images[0].shape[-1]
    ds = tf.data.Dataset.from_generator(
        lambda: ((image, 0) for image in images),
        output_signature=(
            tf.TensorSpec((None, None, channels), tf.uint8),
            tf.TensorSpec((), tf.int32),
        ),
    )
    return decode_to_arrays(ds, channels).images


def decode_to_arrays(ds: Any, channels: int, description: str = "decoding") -> Split:
    """A tf.data dataset of (image, label) pairs -> uint8 arrays resized to 32x32, with a progress
    bar (``description``) where the dataset's size is known."""
    tf = tensorflow()
    total = int(ds.cardinality())

    def resize(image, label):
        image = tf.ensure_shape(image, [None, None, channels])
        if_resized = tf.image.resize(image, (IMAGE_SIZE, IMAGE_SIZE), antialias=True)
        image = tf.cond(
            tf.reduce_all(tf.shape(image)[:2] == IMAGE_SIZE),
            lambda: image,
            lambda: tf.cast(tf.clip_by_value(tf.round(if_resized), 0, 255), tf.uint8),
        )
        return tf.ensure_shape(image, [IMAGE_SIZE, IMAGE_SIZE, channels]), tf.cast(label, tf.int32)

    ds = ds.map(resize, num_parallel_calls=tf.data.AUTOTUNE).batch(1024).prefetch(2)
    images, labels = [], []
    with progress(total if total >= 0 else None, description, "image", enabled=total != 0) as bar:
        for image_batch, label_batch in ds.as_numpy_iterator():
            images.append(image_batch)
            labels.append(label_batch)
            bar.update(len(label_batch))
    if not images:
        return Split(np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, channels), np.uint8), np.zeros((0,), np.int32))
    return Split(np.concatenate(images), np.concatenate(labels))
