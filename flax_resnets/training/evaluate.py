"""Evaluation: exact loss and accuracy over a split, and a checkpoint's test report (eval.json)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import Mesh

from flax_resnets.config import check_same_data, check_same_run, recorded_config, validate_config
from flax_resnets.data.feeds import Feed
from flax_resnets.data.pipelines import make_feed
from flax_resnets.data.sources import load_config_dataset
from flax_resnets.errors import InputError
from flax_resnets.files import write_json
from flax_resnets.runs.plots import write_plots
from flax_resnets.runtime import parallel, xla_cpu
from flax_resnets.training import steps
from flax_resnets.training.checkpoints import Checkpoints


def compile_eval_step(graphdef: Any, feed: Feed, mesh: Mesh, *, flip: bool = False) -> Callable:
    """The jitted evaluation step on a feed's inputs: batch sums, replicated (``flip``: averaged
    with the mirror images, ``config.eval_flip``)."""

    def evaluate_batch(model_state, inputs, constants):
        return steps.eval_step(graphdef, model_state, feed.eval_batch(inputs, constants), flip)

    return jax.jit(
        evaluate_batch, out_shardings=parallel.replicated(mesh), compiler_options=xla_cpu.compiler_options()
    )


def eval_batch_size(config: ml_collections.ConfigDict) -> int:
    """config.eval_batch_size rounded up to a multiple of the device count (padding is masked)."""
    devices = jax.device_count()
    return -(-config.eval_batch_size // devices) * devices


def evaluate_split(
    eval_fn: Callable, model_state: steps.ModelState, feed: Feed, split: str
) -> dict[str, Any] | None:
    """Mean loss, accuracy and the confusion matrix (rows: labels, columns: predictions) over every
    example of ``split`` exactly once; None for an empty split."""
    if len(getattr(feed.dataset, split)) == 0:
        return None
    sums, constants = None, feed.constants(split)
    for inputs in feed.eval_inputs(split):
        out = eval_fn(model_state, inputs, constants)
        sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
    sums = jax.device_get(sums)
    count = int(sums["count"])
    return {
        "loss": float(sums["loss"]) / count,
        "accuracy": float(sums["correct"]) / count,
        "num_examples": count,
        "confusion": sums["confusion"].tolist(),
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
    return checkpoints.require_step(int(which))


def test_report(
    step: int, model_state: steps.ModelState, eval_fn: Callable, feed: Feed, config: ml_collections.ConfigDict
) -> dict[str, Any]:
    """The test split's metrics of the checkpoint at ``step`` (its model state given): eval.json."""
    metrics = evaluate_split(eval_fn, model_state, feed, "test")
    if metrics is None:
        raise InputError(f"The test split of {config.dataset!r} is empty: there is nothing to evaluate.")
    return {
        "test_accuracy": metrics["accuracy"],
        "test_loss": metrics["loss"],
        "num_examples": metrics["num_examples"],
        "checkpoint_step": step,
        "dataset": config.dataset,
        "model": config.model,
        "class_names": list(feed.dataset.class_names),
        "confusion": metrics["confusion"],
    }


def evaluate_workdir(
    config: ml_collections.ConfigDict | None, workdir: Path, which: str = "best"
) -> dict[str, Any]:
    """``--mode=eval``: test a checkpoint of an existing run. The best checkpoint's result is
    ``workdir/eval.json`` (what the run's plots and Table 1 read); any other checkpoint's goes to
    ``workdir/eval_step<N>.json`` beside it, so that eval.json is never replaced by a worse step.

    Only the model's parameters and BatchNorm statistics are read from the checkpoint."""
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
        step = choose_step(checkpoints, which)  # a missing checkpoint fails before any data is read
        is_best = step == choose_step(checkpoints, "best")
        parallel.initialize_distributed(config.distributed)
        dataset = load_config_dataset(config)
        check_same_data(workdir, dataset.fingerprint())
        mesh = parallel.data_parallel_mesh()
        feed = make_feed(config, dataset, mesh, eval_batch_size=eval_batch_size(config))
        graphdef, abstract = steps.abstract_model_state(
            config, num_classes=dataset.num_classes, input_channels=dataset.channels
        )
        model_state = checkpoints.restore_fields(step, parallel.abstract(abstract, mesh))
        eval_fn = compile_eval_step(graphdef, feed, mesh, flip=config.eval_flip)
        report = test_report(step, model_state, eval_fn, feed, config)
    if jax.process_index() == 0:
        if is_best:
            write_json(workdir / "eval.json", report)
            write_plots(workdir)
        else:
            path = workdir / f"eval_step{step}.json"
            write_json(path, report)
            print(f"wrote {path}: eval.json keeps the best checkpoint's result", file=sys.stderr)
    return report
