"""``benchmark --data_dir``: the trainer's loop on real data against its compiled step alone,
and the train state both parts of the benchmark start from."""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Any

import jax
import ml_collections

from flax_resnets.config import default_config
from flax_resnets.data.arrays import Dataset
from flax_resnets.data.feeds import make_feed
from flax_resnets.progress import progress
from flax_resnets.runtime import parallel
from flax_resnets.training import steps


def recipe(model: str, dtype: str) -> ml_collections.ConfigDict:
    """The paper's recipe for ``model`` in ``dtype``: what the trainer would compile."""
    config = default_config(model=model)
    config.dtype = dtype
    return config


def recipe_training(
    model: str,
    dtype: str,
    *,
    num_classes: int,
    input_channels: int,
    mesh: Any,
    make_batch: steps.MakeBatch,
    num_seeds: int = 1,
) -> steps.Training:
    """The trainer's program for ``model`` in the paper's recipe (``num_seeds`` members) over
    ``mesh``, its batches made by ``make_batch``."""
    config = recipe(model, dtype)
    config.num_seeds = num_seeds
    return steps.build_training(
        config,
        num_classes=num_classes,
        input_channels=input_channels,
        total_steps=10_000,
        mesh=mesh,
        make_batch=make_batch,
    )


def loop_row(args: argparse.Namespace, dataset: Dataset, model: str, batch_size: int) -> dict[str, Any]:
    """The trainer's loop on real data (its feed, augmentation, epochs) against its compiled step
    alone on one batch: both dispatch the same number of calls and wait once at the end, as the
    trainer does, so the difference is what the input pipeline and the host cost between steps."""
    mesh = parallel.make_mesh()
    feed_config = recipe(model, args.dtype)
    feed_config.update(batch_size=batch_size)
    feed = make_feed(feed_config, dataset, mesh, eval_batch_size=batch_size)
    training = recipe_training(
        model,
        args.dtype,
        num_classes=dataset.num_classes,
        input_channels=dataset.channels,
        mesh=mesh,
        make_batch=feed.train_batch,
    )
    state, train = training.state, training.train
    constants = feed.constants("train")
    # Epoch after epoch; an epoch's last, shorter call would compile anew inside the timing, so
    # it is made but not run.
    size = args.steps_per_call
    chunks = (
        inputs
        for epoch in itertools.count()
        for inputs, num_steps in feed.train_calls(epoch=epoch, start_step=0, steps_per_call=size)
        if num_steps == size
    )
    first = next(chunks)
    for _ in range(args.warmup + 1):  # the first call compiles
        state = train(state, first, constants, size)
    jax.block_until_ready(state)
    calls = -(-args.loop_steps // size)

    started = time.perf_counter()
    for _ in range(calls):
        state = train(state, first, constants, size)
    jax.block_until_ready(state)
    step_seconds = time.perf_counter() - started

    started = time.perf_counter()
    with progress(calls, f"{model} loop", "call") as bar:
        for inputs in itertools.islice(chunks, calls):
            state = train(state, inputs, constants, size)
            bar.update()
    jax.block_until_ready(state)
    loop_seconds = time.perf_counter() - started
    images = calls * size * batch_size
    step_images_per_second = images / step_seconds
    loop_images_per_second = images / loop_seconds
    return {
        "model": model,
        "batch": batch_size,
        "steps": calls * size,
        "step img/s": step_images_per_second,
        "loop img/s": loop_images_per_second,
        "loop/step": loop_images_per_second / step_images_per_second,
    }
