"""The training state and the pure functions on it: a training step on a batch, an evaluation step's
sums, the logits. The model's graph is split from its arrays once (``nnx.split``) and merged back
inside the trace, so that ``training.programs`` compiles them over a mesh.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx, struct

from flax_resnets.models import create_model
from flax_resnets.runtime import members
from flax_resnets.runtime.tuning import for_backend

Batch = dict[str, jax.Array]  # the model's batch: image, label (and mask when evaluating)
# What evaluation needs of a training state: {"params": ..., "batch_stats": ...}.
ModelState = dict[str, nnx.State]
# Sums over the current epoch's training steps, kept in the state so that an epoch resumed
# from a mid-epoch checkpoint reports the same numbers as one never interrupted.
EPOCH_SUMS = ("loss", "correct", "count", "nonfinite_steps")


# Salt of the dropout stream of a seed's randomness (parameters, order and crops draw elsewhere).
DROPOUT_STREAM = 0x64726F70


@struct.dataclass
class TrainState:
    step: jax.Array
    params: nnx.State
    batch_stats: nnx.State
    opt_state: optax.OptState
    epoch_sums: dict[str, jax.Array]
    # The member's dropout key (raw key data): step s drops units with ``dropout_key(rng, s)``, so
    # the masks are a function of (seed, step), the same after a resume.
    dropout_rng: jax.Array

    def model_state(self) -> ModelState:
        return {"params": self.params, "batch_stats": self.batch_stats}


def make_schedule(config: ml_collections.ConfigDict, total_steps: int) -> Callable:
    """The learning rate per step: "cosine_epochs" (the paper's), PyTorch's ``CosineAnnealingLR(T_max=
    cosine_period_epochs)`` stepped once per epoch; "cosine", the same curve every step (a period of 0:
    the whole run); "multistep", /10 at 50% and 75% (He et al.); "onecycle", linear up, then down."""
    epoch_steps = max(total_steps // config.num_epochs, 1)
    period_epochs = config.cosine_period_epochs or config.num_epochs
    if config.schedule in ("cosine", "cosine_epochs"):
        period = period_epochs * (epoch_steps if config.schedule == "cosine" else 1)
        per_step = config.schedule == "cosine"

        def cosine(step: jax.Array) -> jax.Array:
            position = step if per_step else step // epoch_steps
            return config.learning_rate * (1 + jnp.cos(jnp.pi * position / period)) / 2

        return cosine
    if config.schedule == "multistep":
        return optax.piecewise_constant_schedule(
            config.learning_rate, {round(total_steps * 0.5): 0.1, round(total_steps * 0.75): 0.1}
        )
    warmup = round(config.warmup_epochs * total_steps / config.num_epochs)
    return optax.join_schedules(
        [
            optax.linear_schedule(0.0, config.learning_rate, max(warmup, 1)),
            optax.linear_schedule(config.learning_rate, 0.0, max(total_steps - warmup, 1)),
        ],
        boundaries=[warmup],
    )


def is_kernel(params: nnx.State) -> Any:
    """True for convolution and dense kernels, False for biases and BatchNorm's scales and shifts."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: any(getattr(key, "key", None) == "kernel" for key in path), params
    )


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> tuple[Any, Callable]:
    """PyTorch's SGD(momentum, weight_decay) under the config's schedule: weight decay added to the
    gradient before momentum, to every parameter (or the kernels only); ``nesterov`` if asked."""
    schedule = make_schedule(config, total_steps)
    optimizer = optax.chain(
        optax.add_decayed_weights(
            config.weight_decay, mask=is_kernel if config.weight_decay_kernels_only else None
        ),
        optax.sgd(schedule, momentum=config.momentum or None, nesterov=config.nesterov),
    )
    return optimizer, schedule


def zero_epoch_sums(num_seeds: int) -> dict[str, jax.Array]:
    """Every member's epoch sums at an epoch's start."""
    return {name: jnp.zeros((num_seeds,), jnp.float32) for name in EPOCH_SUMS}


def config_model(
    config: ml_collections.ConfigDict,
    *,
    num_classes: int,
    input_channels: int,
    seed: int | None = None,
    platform: str | None = None,
) -> nnx.Module:
    """The config's model, freshly initialized from ``seed`` (default ``config.seed``), convolving
    as ``platform`` (default: this process's backend) runs fastest."""
    return create_model(
        config.model,
        num_classes=num_classes,
        input_channels=input_channels,
        seed=config.seed if seed is None else seed,
        dtype=jnp.dtype(config.dtype),
        init=config.init,
        convolution=for_backend(platform).convolution,
    )


def abstract_model_state(
    config: ml_collections.ConfigDict, *, num_classes: int, input_channels: int
) -> tuple[nnx.GraphDef, ModelState]:
    """The model's graph, and its parameters and BatchNorm statistics as shapes only (nothing is
    initialized), with the run's member axis: what evaluating a checkpoint needs."""
    model = nnx.eval_shape(
        lambda: config_model(config, num_classes=num_classes, input_channels=input_channels)
    )
    graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    return graphdef, members.join_shapes({"params": params, "batch_stats": batch_stats}, config.num_seeds)


def create_train_state(
    config: ml_collections.ConfigDict,
    *,
    num_classes: int,
    input_channels: int,
    optimizer: Any,
    platform: str | None = None,
) -> tuple[nnx.GraphDef, TrainState]:
    """Freshly initialized models and optimizers, split into graph and state: member k from seed
    ``config.seed + k``, exactly as a one-seed run of it (built for ``platform``)."""
    states = []
    for seed in members.member_seeds(config.seed, config.num_seeds):
        model = config_model(
            config, num_classes=num_classes, input_channels=input_channels, seed=seed, platform=platform
        )
        graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
        states.append(
            TrainState(
                step=jnp.zeros((), jnp.int32),
                params=params,
                batch_stats=batch_stats,
                opt_state=optimizer.init(params),
                epoch_sums={},  # every member's, below
                dropout_rng=jax.random.key_data(jax.random.fold_in(jax.random.key(seed), DROPOUT_STREAM)),
            )
        )
    return graphdef, members.join(states).replace(epoch_sums=zero_epoch_sums(config.num_seeds))


def dropout_key(dropout_rng: jax.Array, step: jax.Array) -> jax.Array:
    """The key that step ``step`` of a member with ``dropout_rng`` draws its dropout masks from."""
    return jax.random.fold_in(jax.random.wrap_key_data(dropout_rng), step)


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example cross-entropy against the labels, smoothed towards uniform by ``label_smoothing``."""
    if not label_smoothing:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def train_step(
    graphdef: nnx.GraphDef, optimizer: Any, state: TrainState, batch: Batch, label_smoothing: float = 0.0
) -> TrainState:
    """One SGD step on a global batch; BatchNorm uses and updates the batch's statistics, dropout
    draws the step's masks."""

    model = nnx.merge(graphdef, state.params, state.batch_stats)

    def loss_fn(model):
        logits = model(batch["image"], train=True, dropout_key=dropout_key(state.dropout_rng, state.step))
        loss = cross_entropy(logits, batch["label"], label_smoothing).mean()
        return loss, logits

    # nnx.grad differentiates the parameters and carries the BatchNorm updates back to ``model``.
    (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    batch_stats = nnx.state(model, nnx.BatchStat)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
    count = batch["label"].shape[0]
    sums = state.epoch_sums
    return state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        batch_stats=batch_stats,
        opt_state=opt_state,
        epoch_sums={
            "loss": sums["loss"] + loss * count,
            "correct": sums["correct"] + jnp.sum(jnp.argmax(logits, -1) == batch["label"]),
            "count": sums["count"] + count,
            "nonfinite_steps": sums["nonfinite_steps"] + (1 - finite),
        },
    )


def model_logits(
    graphdef: nnx.GraphDef, model_state: ModelState, images: jax.Array, flip: bool = False
) -> jax.Array:
    """The model's logits in evaluation mode; ``flip``: the mean of the image's and its mirror
    image's (test-time augmentation)."""
    model = nnx.merge(graphdef, model_state["params"], model_state["batch_stats"])
    out = model(images, train=False)
    return (out + model(images[:, :, ::-1], train=False)) / 2 if flip else out


def eval_step(
    graphdef: nnx.GraphDef, model_state: ModelState, batch: Batch, flip: bool = False
) -> dict[str, jax.Array]:
    """Summed loss, correct predictions and the confusion matrix (rows: labels, columns:
    predictions) over the batch's real (unmasked) examples."""
    out = model_logits(graphdef, model_state, batch["image"], flip)
    mask, labels = batch["mask"], batch["label"]
    predictions = jnp.argmax(out, -1)
    loss = optax.softmax_cross_entropy_with_integer_labels(out, labels)
    confusion = jnp.zeros((out.shape[-1],) * 2, jnp.int32)
    return {
        "loss": jnp.sum(jnp.where(mask, loss, 0.0)),
        "correct": jnp.sum((predictions == labels) & mask),
        "count": jnp.sum(mask),
        "confusion": confusion.at[labels, predictions].add(mask.astype(jnp.int32)),
    }
