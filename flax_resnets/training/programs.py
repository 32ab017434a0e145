"""Every compiled program of a run, built here alone (``build_programs``, from the config, the dataset or
its shapes, the mesh; ``jit_logits`` is predict's). A batch's path, top to bottom: the loop calls
``Programs.train``, whose body asks the feed for each step's batch (gather, augment, normalise) and
gives it to ``steps.train_step``; nothing calls back up.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from jax.sharding import Mesh

from flax_resnets.data.arrays import Dataset
from flax_resnets.data.feeds import CallStep, Feed, make_feed
from flax_resnets.runtime import members, parallel, tpu
from flax_resnets.runtime.tuning import for_backend
from flax_resnets.training import steps


@dataclasses.dataclass(frozen=True)
class Programs:
    """A run's feed, optimizer, schedule, initial state (or its shapes) and programs: ``train``, steps of
    every member in one call (the old state donated); ``evaluate`` and ``validate``, members' sums."""

    config: ml_collections.ConfigDict
    feed: Feed
    mesh: Mesh
    graphdef: nnx.GraphDef
    optimizer: Any
    schedule: Callable
    state: steps.TrainState
    train: Callable
    evaluate: Callable
    validate: Callable

    @property
    def total_steps(self) -> int:
        return self.feed.epoch_steps * self.config.num_epochs


def eval_batch_size(config: ml_collections.ConfigDict, mesh: Mesh) -> int:
    """config.eval_batch_size rounded up to a multiple of the mesh's devices (padding is masked)."""
    devices = mesh.devices.size
    return -(-config.eval_batch_size // devices) * devices


def build_programs(
    config: ml_collections.ConfigDict, dataset: Dataset, mesh: Mesh, *, shapes_only: bool = False
) -> Programs:
    """The programs of ``config`` on ``dataset`` over ``mesh``; ``shapes_only``: the state as shapes and
    shardings, for evaluating a checkpoint or compiling for devices this process lacks."""
    platform = parallel.platform(mesh)
    if platform == "tpu" == jax.default_backend():  # compiling for this process's own TPU
        tpu.require_compiler_stack(mesh.devices.flat[0].device_kind)
    feed = make_feed(config, dataset, mesh, eval_batch_size=eval_batch_size(config, mesh))
    optimizer, schedule = steps.make_optimizer(config, feed.epoch_steps * config.num_epochs)
    graphdef = None

    def initial_state() -> steps.TrainState:
        nonlocal graphdef
        graphdef, state = steps.create_train_state(
            config,
            num_classes=dataset.num_classes,
            input_channels=dataset.channels,
            optimizer=optimizer,
            platform=platform,
        )
        return state

    if shapes_only:
        state = parallel.abstract(jax.eval_shape(initial_state), mesh)
    else:
        state = parallel.place_state(initial_state(), mesh)
    tuning = for_backend(platform)
    train = tuning.jit(
        functools.partial(train_call, feed, graphdef, optimizer, config, tuning.unroll),
        static_argnums=3,
        out_shardings=parallel.state_sharding(mesh),
        donate_argnums=0,
    )
    evaluate = jit_evaluate(feed, graphdef, mesh, member_inputs=False, flip=config.eval_flip)
    validate = evaluate
    if feed.augments("validation"):
        validate = jit_evaluate(feed, graphdef, mesh, member_inputs=True, flip=config.eval_flip)
    return Programs(config, feed, mesh, graphdef, optimizer, schedule, state, train, evaluate, validate)


def train_call(
    feed: Feed,
    graphdef: nnx.GraphDef,
    optimizer: Any,
    config: ml_collections.ConfigDict,
    unroll: bool,
    state: steps.TrainState,
    inputs: Any,
    constants: Any,
    num_steps: int,
) -> steps.TrainState:
    """The body of ``Programs.train``: for every member (its own state and call inputs, the
    constants shared), ``num_steps`` steps, each the feed's batch given to the training step."""

    def one_member(state: steps.TrainState, inputs: Any) -> steps.TrainState:
        def one_step(state: steps.TrainState, index: Any) -> tuple[steps.TrainState, None]:
            batch = feed.train_batch(CallStep(inputs, constants, index, state.step))
            return steps.train_step(graphdef, optimizer, state, batch, config.label_smoothing), None

        if unroll:
            for index in range(num_steps):
                state, _ = one_step(state, index)
            return state
        return jax.lax.scan(one_step, state, jnp.arange(num_steps))[0]

    return members.over_members(one_member, config.num_seeds, unroll=unroll)(state, inputs)


def jit_evaluate(
    feed: Feed, graphdef: nnx.GraphDef, mesh: Mesh, *, member_inputs: bool, flip: bool
) -> Callable:
    """(model state, inputs, constants) -> each member's sums on the feed's evaluation batch,
    replicated; ``member_inputs``: each member its own inputs (augmented validation images)."""
    tuning = for_backend(parallel.platform(mesh))

    def evaluate_batch(model_state: steps.ModelState, inputs: Any, constants: Any) -> dict[str, jax.Array]:
        return steps.eval_step(graphdef, model_state, feed.eval_batch(inputs, constants), flip)

    every_member = members.over_members(
        evaluate_batch, feed.num_seeds, in_axes=(0, 0 if member_inputs else None, None), unroll=tuning.unroll
    )
    return tuning.jit(every_member, out_shardings=parallel.replicated(mesh))


@functools.cache  # one compilation per model (and input shape), however many calls
def jit_logits(graphdef: nnx.GraphDef) -> Callable[[steps.ModelState, jax.Array], jax.Array]:
    """(one model's state, normalised images) -> logits on this process's default device."""
    return for_backend().jit(functools.partial(steps.model_logits, graphdef))
