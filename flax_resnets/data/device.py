"""The input pipeline inside the compiled step: data resident in accelerator memory.

The paper's datasets are tiny for an accelerator (CIFAR-10's training images are 150 MB of
uint8), so each split is copied once to every device as uint8, and each step gathers its
batch, crops, flips and normalizes it in JAX, fused into the compiled training step. The host
sends each epoch's order of examples once; a step finds its batch in it from the state's step
number, so the host does nothing per step but dispatch. TensorFlow is not needed (train from a
file written by ``python -m flax_resnets data export``).

Same semantics as the tf.data pipeline: the same per-epoch permutation (so the same examples
in the same batches, for the same seed), pad-4 zero padding before or after normalizing, a
random 32x32 crop, a flip with probability 1/2, per-channel normalization, exact masked
evaluation, validation images augmented with the same crops and flips
(``augment.validation_draws``). The training crops and flips are drawn from JAX's random numbers,
keyed by (seed, epoch, step, row of the global batch), not TensorFlow's, so the augmentation of a
given example differs between the two pipelines; its distribution does not (``data.augment``;
``tests/test_augment.py`` draws from both). Each split
is replicated, not sharded, over the devices so that any global permutation costs no
communication: a few hundred MB at most per device here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flax_resnets.data.augment import pad_crop_flip, pad_crop_flip_at, validation_draws
from flax_resnets.data.feeds import CallStep, FeedSettings
from flax_resnets.data.order import epoch_permutation, eval_positions, steps_per_epoch
from flax_resnets.runtime import members, parallel


@dataclasses.dataclass(eq=False)
class DeviceFeed(FeedSettings):
    def __post_init__(self) -> None:
        self.mean, self.std = (np.asarray(c, np.float32) for c in self.dataset.normalization_constants())
        self.epoch_steps = steps_per_epoch(len(self.dataset.train), self.batch_size)
        splits = {
            "train": self.dataset.train,
            "validation": self.dataset.validation,
            "test": self.dataset.test,
        }
        self.on_device = {
            name: parallel.replicate(
                {"images": split.images, "labels": split.labels.astype(np.int32)}, self.mesh
            )
            for name, split in splits.items()
        }
        seeds = members.join([np.int32(seed) for seed in self.seeds()], xp=np)
        self.member_seeds = parallel.place_state(seeds, self.mesh, self.num_seeds)

    def train_calls(self, *, epoch: int, start_step: int, steps_per_call: int) -> Iterator[tuple[Any, int]]:
        """The epoch's order and the seed (per member), sent to the devices once, with each call's
        number of steps: the compiled step finds its batch in the order at the state's step, so
        nothing else moves."""
        inputs = {"order": self.epoch_order(epoch), "seed": self.member_seeds}
        for first in range(start_step, self.epoch_steps, steps_per_call):
            yield inputs, min(steps_per_call, self.epoch_steps - first)

    def epoch_order(self, epoch: int) -> jax.Array:
        """(steps, batch) example indices of the epoch (per member), each device holding its rows
        of every batch."""
        orders = [
            epoch_permutation(len(self.dataset.train), seed, epoch)[: self.epoch_steps * self.batch_size]
            .reshape(self.epoch_steps, self.batch_size)
            .astype(np.int32)
            for seed in self.seeds()
        ]
        order = members.join(orders, xp=np)
        on_members = self.num_seeds > 1
        sharding = parallel.batch_sharded(self.mesh, batch_axis=1 + on_members, members=on_members)
        return jax.make_array_from_callback(order.shape, sharding, lambda index: order[index])

    def train_batch(self, call: CallStep) -> dict:
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
        """Per global batch, the examples' indices and mask (and for augmented validation images,
        each member's crops and flips, stacked)."""
        num_examples = len(getattr(self.dataset, split))
        positions = eval_positions(
            num_examples, self.eval_batch_size, jax.process_index(), jax.process_count()
        )
        draws = None
        if self.augments(split):
            draws = [validation_draws(num_examples, seed, epoch) for seed in self.seeds()]
        on_members = self.member_eval_inputs(split)
        for batch_positions in positions:
            mask = batch_positions < num_examples
            index = np.where(mask, batch_positions, 0).astype(np.int32)
            batch = {"index": index, "mask": mask}
            if draws is not None:
                batch = members.join(
                    [{**batch, "offsets": offsets[index], "flips": flips[index]} for offsets, flips in draws],
                    xp=np,
                )
            yield parallel.global_batch(batch, self.mesh, batch_axis=int(on_members), members=on_members)

    def constants(self, split: str) -> dict[str, jax.Array]:
        """The split's images and labels, resident on every device."""
        return self.on_device[split]

    def eval_batch(self, inputs: dict[str, Any], constants: dict[str, jax.Array]) -> dict[str, jax.Array]:
        index = inputs["index"]
        images = constants["images"][index]
        if "offsets" in inputs:
            images = self.augmented(images, jax.vmap(pad_crop_flip_at), inputs["offsets"], inputs["flips"])
        else:
            images = self.normalize(images)
        return {"image": images, "label": constants["labels"][index], "mask": inputs["mask"]}

    def normalize(self, images: jax.Array) -> jax.Array:
        return (images.astype(jnp.float32) / 255.0 - self.mean) / self.std

    def augmented(self, images: jax.Array, augmentation: Any, *draws: jax.Array) -> jax.Array:
        """Normalized ``augmentation(images, *draws)``: padded with zeros before or after normalizing."""
        if self.pad_after_normalization:
            return augmentation(self.normalize(images), *draws)
        return self.normalize(augmentation(images, *draws))


def example_key(seed: int | jax.Array, draw: jax.Array) -> jax.Array:
    """The random key of one example: a function of (seed, epoch, step, row of the global batch)."""
    key = jax.random.key(seed)
    for value in (draw[0], draw[1], draw[2]):
        key = jax.random.fold_in(key, value)
    return key
