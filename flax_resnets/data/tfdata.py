"""tf.data batches from an in-memory split: shuffling, the paper's augmentation, normalization.

Training (section 3.1 of the paper): every epoch a fresh permutation of the split; each
example is zero-padded by 4 pixels, randomly cropped back to 32x32 and flipped horizontally
with probability 1/2, then normalized per channel. Batches drop the remainder.
Evaluation: no augmentation; every example exactly once, the last batch padded and masked.

Randomness is a pure function of (seed, epoch, step): the same seed gives the same order and
the same augmentation, a run can resume at any step, and every process of a multi-host run
draws the global batch's randomness and keeps its own rows, so results do not depend on the
number of hosts. Augmentation is vectorized over the batch and runs in tf.data's threads,
ahead of the accelerator.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from flax_resnets import parallel
from flax_resnets.data import DATASET_NAMES, Dataset, Split, load_dataset, tensorflow
from flax_resnets.errors import InputError
from flax_resnets.feeds import FeedSettings, stacked_step

PAD = 4
Batch = dict[str, np.ndarray]


def local_batch_size(global_batch_size: int, process_count: int, local_device_count: int) -> int:
    """This process's rows of a global batch; the batch must split evenly over processes and devices."""
    if global_batch_size < 1 or global_batch_size % (process_count * local_device_count):
        raise InputError(
            f"batch_size={global_batch_size} cannot be shared by {process_count} process(es) with "
            f"{local_device_count} device(s) each: use a positive multiple of "
            f"{process_count * local_device_count}."
        )
    return global_batch_size // process_count


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits the training examples."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
    return num_examples // global_batch_size


def eval_positions(
    num_examples: int, global_batch_size: int, process_index: int, process_count: int
) -> np.ndarray:
    """(steps, local batch) example positions of this process; positions >= num_examples are padding."""
    local = global_batch_size // process_count
    steps = -(-num_examples // global_batch_size)
    positions = np.arange(steps * global_batch_size).reshape(steps, global_batch_size)
    return positions[:, process_index * local : (process_index + 1) * local]


def train_batches(
    split: Split,
    dataset: Dataset,
    *,
    global_batch_size: int,
    seed: int,
    epoch: int,
    start_step: int = 0,
    augment: bool = True,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[Batch]:
    """This process's share of each training batch of one epoch, from step ``start_step`` on."""
    tf = tensorflow()
    steps = steps_per_epoch(len(split), global_batch_size)
    if steps == 0:
        raise InputError(
            f"batch_size={global_batch_size} is larger than the {len(split)} training examples: "
            "use a smaller batch_size."
        )
    local = global_batch_size // process_count
    rows = slice(process_index * local, (process_index + 1) * local)
    order = epoch_permutation(len(split), seed, epoch)[: steps * global_batch_size]
    indices = order.reshape(steps, global_batch_size)[start_step:]
    images, labels = _as_tensors(split)
    mean, std = _normalization(dataset)

    def make_batch(global_indices, step):
        batch_images = tf.gather(images, global_indices)
        if augment:
            batch_images = pad_crop_flip(batch_images, tf.stack([seed, epoch, step]))
        return {
            "image": (tf.cast(batch_images[rows], tf.float32) / 255.0 - mean) / std,
            "label": tf.gather(labels, global_indices[rows]),
        }

    steps_ids = np.arange(start_step, steps, dtype=np.int64)
    ds = tf.data.Dataset.from_tensor_slices((indices, steps_ids))
    ds = ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    yield from ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def eval_batches(
    split: Split,
    dataset: Dataset,
    *,
    global_batch_size: int,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[Batch]:
    """Every example once, in order; the last global batch is padded and ``mask`` marks real rows."""
    tf = tensorflow()
    positions = eval_positions(len(split), global_batch_size, process_index, process_count)
    images, labels = _as_tensors(split)
    mean, std = _normalization(dataset)

    def make_batch(batch_positions):
        mask = batch_positions < len(split)
        indices = tf.where(mask, batch_positions, 0)
        return {
            "image": (tf.cast(tf.gather(images, indices), tf.float32) / 255.0 - mean) / std,
            "label": tf.gather(labels, indices),
            "mask": mask,
        }

    ds = tf.data.Dataset.from_tensor_slices(positions)
    ds = ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    yield from ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def stacked_on_mesh(
    local_batches: Iterator[Batch], steps_per_call: int, mesh: Any
) -> Iterator[dict[str, jax.Array]]:
    """Consecutive batches in groups of up to ``steps_per_call``, each field stacked on a new
    leading (step) axis and split over the mesh along the batch axis: the inputs of one call."""
    while group := list(itertools.islice(local_batches, steps_per_call)):
        stacked = {key: np.stack([batch[key] for batch in group]) for key in group[0]}
        yield parallel.global_batch(stacked, mesh, batch_axis=1)


class TfDataFeed(FeedSettings):
    """Batches made on the host by tf.data, then split over the mesh."""

    def train_calls(self, *, epoch: int, start_step: int, steps_per_call: int) -> Iterator[tuple[Any, int]]:
        """The epoch's batches from ``start_step`` on, stacked ``steps_per_call`` at a time."""
        batches = train_batches(
            self.dataset.train,
            self.dataset,
            global_batch_size=self.batch_size,
            seed=self.seed,
            epoch=epoch,
            start_step=start_step,
            augment=self.augment,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
        for inputs in stacked_on_mesh(batches, steps_per_call, self.mesh):
            yield inputs, inputs["label"].shape[0]

    train_batch = staticmethod(stacked_step)

    def eval_inputs(self, split: str) -> Iterator[dict[str, Any]]:
        for batch in eval_batches(
            getattr(self.dataset, split),
            self.dataset,
            global_batch_size=self.eval_batch_size,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        ):
            yield parallel.global_batch(batch, self.mesh)

    @staticmethod
    def eval_batch(inputs: dict[str, Any], constants: dict[str, Any]) -> dict[str, Any]:
        del constants
        return inputs  # already the model's batch

    def constants(self, split: str) -> dict[str, Any]:
        """Arrays every step of ``split`` reads: none, the batches carry the images."""
        del split
        return {}


def pad_crop_flip(images: Any, seed: Any) -> Any:
    """Zero-pad by 4, crop a random 32x32 window, flip half the images (per example, whole batch at once).

    ``seed`` is a stateless seed: the same seed draws the same crops and flips.
    """
    tf = tensorflow()
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
    offsets = tf.random.stateless_uniform([batch, 2], seed=_two(seed, 0), maxval=2 * PAD + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(height)[None, :]
    cols = offsets[:, 1:] + tf.range(width)[None, :]
    cropped = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    flip = tf.random.stateless_uniform([batch], seed=_two(seed, 1)) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(cropped, axis=[2]), cropped)


def _two(seed: Any, salt: int) -> Any:
    """A stateless (2,) seed from a (seed, epoch, step) triple and a salt per random draw."""
    tf = tensorflow()
    seed = tf.cast(seed, tf.int64)
    return tf.stack([seed[0] * 1_000_003 + seed[1], seed[2] * 4 + salt])


def _as_tensors(split: Split) -> tuple[Any, Any]:
    tf = tensorflow()
    return tf.constant(split.images), tf.constant(split.labels.astype(np.int32))


def _normalization(dataset: Dataset) -> tuple[Any, Any]:
    tf = tensorflow()
    return tf.constant(dataset.mean, tf.float32), tf.constant(dataset.std, tf.float32)


def main() -> None:
    """Training-pipeline throughput (images/s, augmentation on) for one dataset."""
    parser = argparse.ArgumentParser(prog="python -m flax_resnets.input_pipeline", description=main.__doc__)
    parser.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2, help="epochs to time after one warm-up epoch")
    parser.add_argument("--no_download", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    dataset = load_dataset(args.dataset, data_dir=args.data_dir, download=not args.no_download)
    print(f"loaded {args.dataset}: {len(dataset.train)} train images in {time.perf_counter() - started:.1f}s")
    for epoch in range(args.epochs + 1):
        started, images = time.perf_counter(), 0
        for batch in train_batches(
            dataset.train, dataset, global_batch_size=args.batch_size, seed=0, epoch=epoch
        ):
            images += len(batch["label"])
        rate = images / (time.perf_counter() - started)
        print(f"epoch {epoch}{' (warm-up)' if epoch == 0 else ''}: {images} images, {rate:,.0f} images/s")


if __name__ == "__main__":
    main()
