"""What the training loop needs of an input pipeline (``Feed``).

Two feeds give the same batches of examples for the same seed:

* ``tfdata`` (``tfdata.TfDataFeed``): tf.data makes each batch on the host; every call
  of the compiled step receives its steps' batches, stacked.
* ``device`` (``device.DeviceFeed``): the dataset lives in accelerator memory; the
  epoch's order is sent once, and each call receives nothing new: the compiled step reads its
  batch's examples from the order at the state's step, then crops, flips and normalizes them.

Either way the compiled step turns where a step stands (``CallStep``: the call's inputs, the
constants, the step's index in the call, the run's step) into the model's batch
(``train_batch``), each feed reading what it needs of it, so one ``steps.train_steps`` serves both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol

import jax
from jax.sharding import Mesh

from flax_resnets.data.arrays import Dataset
from flax_resnets.runtime import members

Batch = dict[str, Any]  # the model's batch: image, label (and mask when evaluating)


class CallStep(NamedTuple):
    """A training step inside a compiled call: the call's inputs (a member's own), the feed's
    constants, the step's index within the call and the run's step."""

    inputs: Any
    constants: Any
    index: Any
    step: jax.Array


@dataclasses.dataclass(eq=False)  # eq=False: feeds hash by identity, as jit needs of their methods
class FeedSettings:
    """What every feed is made from: the data, the mesh, the batch sizes and the randomness.

    With ``num_seeds`` > 1 the training inputs of a call have a leading member axis: member k's
    are those of a one-seed feed with seed ``seed + k`` (its own order and augmentation).
    Evaluation inputs are the same for every member, except augmented validation images
    (``augment_validation``, the paper's), whose crops and flips are each member's own."""

    dataset: Dataset
    mesh: Mesh
    batch_size: int
    eval_batch_size: int
    seed: int
    augment: bool
    num_seeds: int = 1
    pad_after_normalization: bool = False  # pad crops with 0 in normalized units, not with black
    augment_validation: bool = False  # crop and flip the validation images afresh every epoch

    def seeds(self) -> list[int]:
        return members.member_seeds(self.seed, self.num_seeds)

    def augments(self, split: str) -> bool:
        """Whether ``split``'s evaluation images are cropped and flipped."""
        return split == "validation" and self.augment_validation

    def member_eval_inputs(self, split: str) -> bool:
        """Whether ``split``'s evaluation inputs have a member axis (each member's own)."""
        return self.augments(split) and self.num_seeds > 1


class Feed(Protocol):
    dataset: Dataset

    def train_calls(self, *, epoch: int, start_step: int, steps_per_call: int) -> Iterator[tuple[Any, int]]:
        """Per compiled call from ``start_step`` of ``epoch`` on: (its inputs, its number of steps),
        ``steps_per_call`` steps per call (fewer at the epoch's end)."""
        ...

    def train_batch(self, call: CallStep) -> Batch:
        """Inside the compiled call: the model's batch of the step ``call`` stands at."""
        ...

    def eval_inputs(self, split: str, epoch: int = 0) -> Iterator[Any]:
        """Every example of ``split`` once, in global batches; padding rows are masked. Augmented
        validation images are cropped as in epoch ``epoch``."""
        ...

    def eval_batch(self, inputs: Any, constants: Any) -> Batch: ...

    def constants(self, split: str) -> Any:
        """Arrays every step of ``split`` reads (already on the mesh)."""
        ...


def stacked_step(call: CallStep) -> Batch:
    """The batch of the call's step ``index`` from inputs that stack one batch per step (tf.data's
    feed, the benchmark's random batches)."""
    return jax.tree.map(lambda x: x[call.index], call.inputs)
