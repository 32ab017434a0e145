"""The one input pipeline: each split in device memory as uint8, each batch made inside the compiled
step from the epoch's order (sent once): gathered, padded, cropped and flipped by keys of (seed,
epoch, step, row), so that a resumed run draws what it would have, and normalised. Evaluation visits
every example once, the last batch padded and masked. Member k's inputs are those of seed + k.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from flax_resnets.data.arrays import Dataset
from flax_resnets.data.augment import pad_crop_flip, pad_crop_flip_at, validation_draws
from flax_resnets.data.images import model_inputs
from flax_resnets.data.order import epoch_permutation, eval_positions, steps_per_epoch
from flax_resnets.errors import InputError
from flax_resnets.runtime import members, parallel

Batch = dict[str, Any]  # the model's batch: image, label (and mask when evaluating)
# Of a device's memory, what the dataset may take (the rest is the model's, its optimizer's and
# its activations').
DATASET_SHARE_OF_MEMORY = 0.5
SPLITS = ("train", "validation", "test")


class CallStep(NamedTuple):
    """A training step inside a compiled call: the call's inputs (a member's own), the feed's
    constants, the step's index within the call and the run's step."""

    inputs: Any
    constants: Any
    index: Any
    step: jax.Array


@dataclasses.dataclass(eq=False)  # eq=False: feeds hash by identity, as jit needs of their methods
class Feed:
    dataset: Dataset
    mesh: Mesh
    batch_size: int
    eval_batch_size: int
    seed: int
    augment: bool
    num_seeds: int = 1
    pad_after_normalization: bool = False  # pad crops with 0 in normalized units, not with black
    augment_validation: bool = False  # crop and flip the validation images afresh every epoch

    def __post_init__(self) -> None:
        require_room(self.dataset)
        self.normalization = self.dataset.normalization_constants()
        self.epoch_steps = steps_per_epoch(len(self.dataset.train), self.batch_size)

    def host_constants(self, split: str) -> dict[str, np.ndarray]:
        data = getattr(self.dataset, split)
        return {"images": data.images, "labels": data.labels.astype(np.int32)}

    @functools.cached_property
    def on_device(self) -> dict[str, dict[str, jax.Array]]:
        """Every split's images and labels, on every device (copied there when first asked for)."""
        replicated = parallel.replicated(self.mesh)
        return {split: jax.device_put(self.host_constants(split), replicated) for split in SPLITS}

    @functools.cached_property
    def member_seeds(self) -> jax.Array:
        seeds = members.join([np.int32(seed) for seed in self.seeds()], xp=np)
        return parallel.place_state(seeds, self.mesh)

    def seeds(self) -> list[int]:
        return members.member_seeds(self.seed, self.num_seeds)

    def augments(self, split: str) -> bool:
        """Whether ``split``'s evaluation images are cropped and flipped (each member's own crops:
        its inputs have a member axis)."""
        return split == "validation" and self.augment_validation

    def train_calls(self, *, epoch: int, start_step: int, steps_per_call: int) -> Iterator[tuple[Any, int]]:
        """Per compiled call from ``start_step`` of ``epoch``: its inputs (the epoch's order and seeds, sent
        once) and its number of steps (fewer at the epoch's end)."""
        inputs = {"order": self.epoch_order(epoch), "seed": self.member_seeds}
        for first in range(start_step, self.epoch_steps, steps_per_call):
            yield inputs, min(steps_per_call, self.epoch_steps - first)

    def epoch_order(self, epoch: int) -> jax.Array:
        """(steps, batch) example indices of the epoch per member, each device holding its rows."""
        orders = [
            epoch_permutation(len(self.dataset.train), seed, epoch)[: self.epoch_steps * self.batch_size]
            .reshape(self.epoch_steps, self.batch_size)
            .astype(np.int32)
            for seed in self.seeds()
        ]
        order = members.join(orders, xp=np)
        return jax.make_array_from_callback(order.shape, self.order_sharding(), lambda index: order[index])

    def order_sharding(self) -> jax.sharding.NamedSharding:
        return parallel.batch_sharded(self.mesh, batch_axis=2, members=True)

    def constants(self, split: str) -> dict[str, jax.Array]:
        """The split's images and labels, resident on every device."""
        return self.on_device[split]

    def train_batch(self, call: CallStep) -> Batch:
        """Inside the compiled step: gather, augment and normalize the global batch of the run's
        step (from the epoch's order in the call's inputs and the dataset in the constants)."""
        inputs, constants = call.inputs, call.constants
        epoch, epoch_step = call.step // self.epoch_steps, call.step % self.epoch_steps
        examples = inputs["order"][epoch_step]
        images = constants["images"][examples]
        if not self.augment:
            return {"image": self.normalize(images), "label": constants["labels"][examples]}
        rows = jnp.arange(self.batch_size, dtype=jnp.int32)
        draws = jnp.stack([jnp.full_like(rows, epoch), jnp.full_like(rows, epoch_step), rows], axis=1)
        keys = jax.vmap(lambda draw: example_key(inputs["seed"], draw))(draws)
        augmentation = jax.vmap(pad_crop_flip)
        return {"image": self.augmented(images, augmentation, keys), "label": constants["labels"][examples]}

    def eval_inputs(self, split: str, epoch: int = 0) -> Iterator[dict[str, Any]]:
        """Every example of ``split`` once, in global batches: indices and mask (padding masked), and
        for augmented validation images each member's crops and flips of ``epoch``."""
        for batch, batch_axis in self.eval_host_batches(split, epoch):
            yield parallel.global_batch(batch, self.mesh, batch_axis=batch_axis, members=bool(batch_axis))

    def eval_host_batches(self, split: str, epoch: int = 0) -> Iterator[tuple[dict[str, np.ndarray], int]]:
        """``eval_inputs``' batches, this process's rows of each, and their batch axis (1 after a
        member axis, 0 without)."""
        num_examples = len(getattr(self.dataset, split))
        positions = eval_positions(
            num_examples, self.eval_batch_size, jax.process_index(), jax.process_count()
        )
        draws = None
        if self.augments(split):
            draws = [validation_draws(num_examples, seed, epoch) for seed in self.seeds()]
        for batch_positions in positions:
            mask = batch_positions < num_examples
            index = np.where(mask, batch_positions, 0).astype(np.int32)
            batch = {"index": index, "mask": mask}
            if draws is not None:
                batch = members.join(
                    [{**batch, "offsets": offsets[index], "flips": flips[index]} for offsets, flips in draws],
                    xp=np,
                )
            yield batch, int(draws is not None)

    def eval_batch(self, inputs: dict[str, Any], constants: dict[str, jax.Array]) -> Batch:
        """Inside the compiled evaluation step: the model's batch of ``eval_inputs``' batch."""
        index = inputs["index"]
        images = constants["images"][index]
        if "offsets" in inputs:
            images = self.augmented(images, jax.vmap(pad_crop_flip_at), inputs["offsets"], inputs["flips"])
        else:
            images = self.normalize(images)
        return {"image": images, "label": constants["labels"][index], "mask": inputs["mask"]}

    def normalize(self, images: jax.Array) -> jax.Array:
        return model_inputs(images, self.normalization)

    def augmented(self, images: jax.Array, augmentation: Any, *draws: jax.Array) -> jax.Array:
        """Normalized ``augmentation(images, *draws)``: padded with zeros before or after normalizing."""
        if self.pad_after_normalization:
            return augmentation(self.normalize(images), *draws)
        return self.normalize(augmentation(images, *draws))


def make_feed(
    config: ml_collections.ConfigDict, dataset: Dataset, mesh: Mesh, *, eval_batch_size: int
) -> Feed:
    """The feed of a run's config."""
    return Feed(
        dataset,
        mesh,
        batch_size=config.batch_size,
        eval_batch_size=eval_batch_size,
        seed=config.seed,
        augment=config.augment,
        num_seeds=config.num_seeds,
        pad_after_normalization=config.pad_after_normalization,
        augment_validation=config.augment_validation,
    )


def example_key(seed: int | jax.Array, draw: jax.Array) -> jax.Array:
    """The random key of one example: a function of (seed, epoch, step, row of the global batch)."""
    key = jax.random.key(seed)
    for value in (draw[0], draw[1], draw[2]):
        key = jax.random.fold_in(key, value)
    return key


def require_room(dataset: Dataset, memory_stats: Any = None) -> None:
    """Refuse a dataset that would take more than ``DATASET_SHARE_OF_MEMORY`` of a device's memory
    (where the device says how much it has: accelerators do, a CPU's host memory does not)."""
    stats = (memory_stats or jax.local_devices()[0].memory_stats)() or {}
    limit = stats.get("bytes_limit")
    size = sum(
        split.images.nbytes + split.labels.nbytes
        for split in (dataset.train, dataset.validation, dataset.test)
    )
    if limit and size > DATASET_SHARE_OF_MEMORY * limit:
        raise InputError(
            f"the dataset takes {size / 1e6:,.0f} MB as uint8 and a device has {limit / 1e6:,.0f} MB: it "
            f"must fit in {DATASET_SHARE_OF_MEMORY:.0%} of it; use fewer images (train_images) or a "
            "device with more memory."
        )
