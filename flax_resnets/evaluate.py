"""Evaluation: exact loss and accuracy over a split, and a checkpoint's test report (eval.json)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import Mesh

from flax_resnets import parallel, steps, xla_cpu
from flax_resnets.checkpoints import Checkpoints
from flax_resnets.config import check_same_run, recorded_config, validate_config
from flax_resnets.data import load_config_dataset
from flax_resnets.errors import InputError
from flax_resnets.feeds import Feed, make_feed
from flax_resnets.input_pipeline import steps_per_epoch
from flax_resnets.reports import write_json


def compile_eval_step(graphdef: Any, feed: Feed, mesh: Mesh) -> Callable:
    """The jitted evaluation step on a feed's inputs: batch sums, replicated."""

    def evaluate_batch(state, inputs, constants):
        return steps.eval_step(graphdef, state, feed.eval_batch(inputs, constants))

    return jax.jit(
        evaluate_batch, out_shardings=parallel.replicated(mesh), compiler_options=xla_cpu.compiler_options()
    )


def eval_batch_size(config: ml_collections.ConfigDict) -> int:
    """config.eval_batch_size rounded up to a multiple of the device count (padding is masked)."""
    devices = jax.device_count()
    return -(-config.eval_batch_size // devices) * devices


def evaluate_split(eval_fn: Callable, state: Any, feed: Feed, split: str) -> dict[str, float] | None:
    """Mean loss and accuracy over every example of ``split`` exactly once; None for an empty split."""
    if len(getattr(feed.dataset, split)) == 0:
        return None
    sums, constants = None, feed.constants(split)
    for inputs in feed.eval_inputs(split):
        out = eval_fn(state, inputs, constants)
        sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
    sums = jax.device_get(sums)
    count = int(sums["count"])
    return {
        "loss": float(sums["loss"]) / count,
        "accuracy": float(sums["correct"]) / count,
        "num_examples": count,
    }


def choose_step(checkpoints: Checkpoints, which: str) -> int:
    """'best' by validation accuracy (the latest if the run has no validation), 'latest', or a step."""
    latest = checkpoints.latest_step()
    if latest is None:
        raise InputError(f"There is no checkpoint in {checkpoints.directory}: train first (--mode=train).")
    if which == "latest":
        return latest
    if which == "best":
        best = checkpoints.best_step(checkpoints.history(latest))
        return latest if best is None else best
    if not which.isdigit():
        raise InputError(f"--checkpoint must be 'best', 'latest' or a step number, got {which!r}.")
    return int(which)


def checkpoint_test_report(
    checkpoints: Checkpoints,
    which: str,
    state_template: Any,
    eval_fn: Callable,
    feed: Feed,
    config: ml_collections.ConfigDict,
) -> dict[str, Any]:
    """Restore checkpoint ``which`` and measure it on the test split."""
    step = choose_step(checkpoints, which)
    state, _ = checkpoints.restore(step, state_template)
    metrics = evaluate_split(eval_fn, state, feed, "test")
    if metrics is None:
        raise InputError(f"The test split of {config.dataset!r} is empty: there is nothing to evaluate.")
    return {
        "test_accuracy": metrics["accuracy"],
        "test_loss": metrics["loss"],
        "num_examples": metrics["num_examples"],
        "checkpoint_step": step,
        "dataset": config.dataset,
        "model": config.model,
    }


def evaluate_workdir(
    config: ml_collections.ConfigDict | None, workdir: Path, which: str = "best"
) -> dict[str, Any]:
    """``--mode=eval``: test a checkpoint of an existing run and write ``workdir/eval.json``."""
    workdir = Path(workdir)
    recorded = recorded_config(workdir)
    if recorded is None:
        raise InputError(
            f"{workdir} holds no run (no config.json): train there first, or pass its --workdir."
        )
    if config is None:
        config = ml_collections.ConfigDict(recorded)
    validate_config(config)
    check_same_run(config, workdir)
    with Checkpoints(workdir / "checkpoints", keep=config.keep_checkpoints, read_only=True) as checkpoints:
        choose_step(checkpoints, which)  # fail on a missing checkpoint before reading any data
        report = evaluate_run(checkpoints, which, config)
    if jax.process_index() == 0:
        write_json(workdir / "eval.json", report)
    return report


def evaluate_run(checkpoints: Checkpoints, which: str, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Rebuild the run's data, model and mesh, then test its checkpoint ``which``."""
    parallel.initialize_distributed(config.distributed)
    dataset = load_config_dataset(config)
    mesh = parallel.data_parallel_mesh()
    feed = make_feed(config, dataset, mesh, eval_batch_size=eval_batch_size(config))
    total_steps = steps_per_epoch(len(dataset.train), config.batch_size) * config.num_epochs
    optimizer, _ = steps.make_optimizer(config, total_steps)
    graphdef, state = steps.create_train_state(
        config, num_classes=dataset.num_classes, input_channels=dataset.channels, optimizer=optimizer
    )
    template = parallel.abstract(state, mesh)
    eval_fn = compile_eval_step(graphdef, feed, mesh)
    return checkpoint_test_report(checkpoints, which, template, eval_fn, feed, config)
