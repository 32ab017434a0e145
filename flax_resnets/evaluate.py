"""Evaluation: exact loss and accuracy over a split, and a checkpoint's test report (eval.json)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import Mesh

from flax_resnets import parallel, steps
from flax_resnets.checkpoints import Checkpoints
from flax_resnets.config import check_same_run, recorded_config, validate_config
from flax_resnets.data import Dataset, Split, load_dataset
from flax_resnets.errors import InputError
from flax_resnets.input_pipeline import eval_batches, steps_per_epoch
from flax_resnets.reports import write_json


def compile_eval_step(graphdef: Any, mesh: Mesh) -> Callable:
    return jax.jit(
        functools.partial(steps.eval_step, graphdef),
        in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)),
        out_shardings=parallel.replicated(mesh),
    )


def eval_batch_size(config: ml_collections.ConfigDict) -> int:
    """config.eval_batch_size rounded up to a multiple of the device count (padding is masked)."""
    devices = jax.device_count()
    return -(-config.eval_batch_size // devices) * devices


def evaluate_split(
    eval_fn: Callable, state: Any, split: Split, dataset: Dataset, *, batch_size: int, mesh: Mesh
) -> dict[str, float] | None:
    """Mean loss and accuracy over every example of ``split`` exactly once; None for an empty split."""
    if len(split) == 0:
        return None
    sums = None
    for local in eval_batches(
        split,
        dataset,
        global_batch_size=batch_size,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    ):
        out = eval_fn(state, parallel.global_batch(local, mesh))
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
    dataset: Dataset,
    config: ml_collections.ConfigDict,
    mesh: Mesh,
) -> dict[str, Any]:
    """Restore checkpoint ``which`` and measure it on the test split."""
    step = choose_step(checkpoints, which)
    state, _ = checkpoints.restore(step, state_template)
    metrics = evaluate_split(
        eval_fn, state, dataset.test, dataset, batch_size=eval_batch_size(config), mesh=mesh
    )
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
    dataset = load_dataset(
        config.dataset,
        data_dir=config.data_dir,
        download=config.download,
        validation_fraction=config.validation_fraction,
        split_seed=config.split_seed,
    )
    mesh = parallel.data_parallel_mesh()
    total_steps = steps_per_epoch(len(dataset.train), config.batch_size) * config.num_epochs
    optimizer, _ = steps.make_optimizer(config, total_steps)
    graphdef, state = steps.create_train_state(
        config, num_classes=dataset.num_classes, input_channels=dataset.channels, optimizer=optimizer
    )
    template = parallel.abstract(state, mesh)
    return checkpoint_test_report(
        checkpoints, which, template, compile_eval_step(graphdef, mesh), dataset, config, mesh
    )
