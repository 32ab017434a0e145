"""tf.data batches from an in-memory split: shuffling, the paper's augmentation, normalization.

Training (section 3.1 of the paper): every epoch a fresh permutation of the split; each
example is zero-padded by 4 pixels, randomly cropped back to 32x32 and flipped horizontally
with probability 1/2, and normalized per channel (padded before normalizing, or after it with
``pad_after_normalization``). Batches drop the remainder.
Evaluation: every example exactly once, the last batch padded and masked; not augmented, unless
given each example's crop and flip (the paper's validation images, ``augment.validation_draws``).

Randomness is a pure function of (seed, epoch, step): the same seed gives the same order and
the same augmentation, a run can resume at any step, and every process of a multi-host run
draws the global batch's randomness and keeps its own rows, so results do not depend on the
number of hosts. Augmentation is vectorized over the batch and runs in tf.data's threads,
ahead of the accelerator.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from flax_resnets.data.arrays import Dataset, Split
from flax_resnets.data.augment import tf_pad_crop_flip, tf_pad_crop_flip_at, validation_draws
from flax_resnets.data.decoding import tensorflow
from flax_resnets.data.feeds import Batch, FeedSettings, stacked_step
from flax_resnets.data.order import epoch_permutation, eval_positions, steps_per_epoch
from flax_resnets.runtime import members, parallel


def train_batches(
    split: Split,
    dataset: Dataset,
    *,
    global_batch_size: int,
    seed: int,
    epoch: int,
    start_step: int = 0,
    augment: bool = True,
    pad_after_normalization: bool = False,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[Batch]:
    """This process's share of each training batch of one epoch, from step ``start_step`` on."""
    tf = tensorflow()
    steps = steps_per_epoch(len(split), global_batch_size)
    local = global_batch_size // process_count
    rows = slice(process_index * local, (process_index + 1) * local)
    order = epoch_permutation(len(split), seed, epoch)[: steps * global_batch_size]
    indices = order.reshape(steps, global_batch_size)[start_step:]
    images, labels = _as_tensors(split)
    normalize = _normalizer(dataset)

    def make_batch(global_indices, step):
        batch_images = tf.gather(images, global_indices)
        if augment:
            augmentation = lambda x: tf_pad_crop_flip(x, tf.stack([seed, epoch, step]))  # noqa: E731
            batch_images = _augmented(batch_images, normalize, augmentation, pad_after_normalization)
        else:
            batch_images = normalize(batch_images)
        return {"image": batch_images[rows], "label": tf.gather(labels, global_indices[rows])}

    steps_ids = np.arange(start_step, steps, dtype=np.int64)
    ds = tf.data.Dataset.from_tensor_slices((indices, steps_ids))
    ds = ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    yield from ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def eval_batches(
    split: Split,
    dataset: Dataset,
    *,
    global_batch_size: int,
    draws: tuple[np.ndarray, np.ndarray] | None = None,
    pad_after_normalization: bool = False,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[Batch]:
    """Every example once, in order; the last global batch is padded and ``mask`` marks real rows.
    ``draws``: each example's crop offset and flip (``augment.validation_draws``) are applied."""
    tf = tensorflow()
    positions = eval_positions(len(split), global_batch_size, process_index, process_count)
    images, labels = _as_tensors(split)
    normalize = _normalizer(dataset)
    if draws is not None:
        offsets, flips = (tf.constant(draw) for draw in draws)

    def make_batch(batch_positions):
        mask = batch_positions < len(split)
        indices = tf.where(mask, batch_positions, 0)
        batch_images = tf.gather(images, indices)
        if draws is None:
            batch_images = normalize(batch_images)
        else:
            augmentation = lambda x: tf_pad_crop_flip_at(  # noqa: E731
                x, tf.gather(offsets, indices), tf.gather(flips, indices)
            )
            batch_images = _augmented(batch_images, normalize, augmentation, pad_after_normalization)
        return {"image": batch_images, "label": tf.gather(labels, indices), "mask": mask}

    ds = tf.data.Dataset.from_tensor_slices(positions)
    ds = ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    yield from ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def stacked_on_mesh(
    local_batches: Iterator[Batch], steps_per_call: int, mesh: Any, *, members: bool = False
) -> Iterator[tuple[dict[str, jax.Array], int]]:
    """Consecutive batches in groups of up to ``steps_per_call``, each field stacked on a new step
    axis (after the member axis of ``members``' batches) and split over the mesh along the batch
    axis: (the inputs of one call, its number of steps)."""
    step_axis = 1 if members else 0
    while group := list(itertools.islice(local_batches, steps_per_call)):
        stacked = {key: np.stack([batch[key] for batch in group], axis=step_axis) for key in group[0]}
        yield parallel.global_batch(stacked, mesh, batch_axis=step_axis + 1, members=members), len(group)


class TfDataFeed(FeedSettings):
    """Batches made on the host by tf.data, then split over the mesh."""

    def train_calls(self, *, epoch: int, start_step: int, steps_per_call: int) -> Iterator[tuple[Any, int]]:
        """The epoch's batches from ``start_step`` on, stacked ``steps_per_call`` at a time (each
        member's from its own pipeline, stacked on the member axis)."""
        pipelines = [
            train_batches(
                self.dataset.train,
                self.dataset,
                global_batch_size=self.batch_size,
                seed=seed,
                epoch=epoch,
                start_step=start_step,
                augment=self.augment,
                pad_after_normalization=self.pad_after_normalization,
                process_index=jax.process_index(),
                process_count=jax.process_count(),
            )
            for seed in self.seeds()
        ]
        batches = (members.join(step_batches, xp=np) for step_batches in zip(*pipelines, strict=True))
        yield from stacked_on_mesh(batches, steps_per_call, self.mesh, members=self.num_seeds > 1)

    train_batch = staticmethod(stacked_step)

    def eval_inputs(self, split: str, epoch: int = 0) -> Iterator[dict[str, Any]]:
        """Every example of ``split`` once, in global batches (each member's, stacked, when the
        validation images are augmented: its crops and flips are its own)."""
        data = getattr(self.dataset, split)
        draws = [None]
        if self.augments(split):
            draws = [validation_draws(len(data), seed, epoch) for seed in self.seeds()]
        pipelines = [
            eval_batches(
                data,
                self.dataset,
                global_batch_size=self.eval_batch_size,
                draws=member_draws,
                pad_after_normalization=self.pad_after_normalization,
                process_index=jax.process_index(),
                process_count=jax.process_count(),
            )
            for member_draws in draws
        ]
        on_members = self.member_eval_inputs(split)
        for batches in zip(*pipelines, strict=True):
            batch = members.join(batches, xp=np)
            yield parallel.global_batch(batch, self.mesh, batch_axis=int(on_members), members=on_members)

    @staticmethod
    def eval_batch(inputs: dict[str, Any], constants: dict[str, Any]) -> dict[str, Any]:
        del constants
        return inputs  # already the model's batch

    def constants(self, split: str) -> dict[str, Any]:
        """Arrays every step of ``split`` reads: none, the batches carry the images."""
        del split
        return {}


def _as_tensors(split: Split) -> tuple[Any, Any]:
    tf = tensorflow()
    return tf.constant(split.images), tf.constant(split.labels.astype(np.int32))


def _normalizer(dataset: Dataset) -> Any:
    """uint8 images -> float32, normalized per channel with the dataset's constants."""
    tf = tensorflow()
    mean, std = (tf.constant(constants, tf.float32) for constants in dataset.normalization_constants())
    return lambda images: (tf.cast(images, tf.float32) / 255.0 - mean) / std


def _augmented(images: Any, normalize: Any, augmentation: Any, pad_after_normalization: bool) -> Any:
    """Normalized augmented images: padded (with zeros) before or after normalizing."""
    if pad_after_normalization:
        return augmentation(normalize(images))
    return normalize(augmentation(images))


