"""Evaluation: exact loss and accuracy over a split, and a checkpoint's test report (eval.json)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from flax_resnets.checks import validate_config
from flax_resnets.data.feeds import Feed
from flax_resnets.data.sources import load_config_dataset
from flax_resnets.errors import InputError
from flax_resnets.files import WorkdirLock, require_writable, write_json
from flax_resnets.progress import progress
from flax_resnets.runs.metrics import best_steps
from flax_resnets.runs.plots import write_plots
from flax_resnets.runs.workdir import check_same_data, check_same_run, read_run
from flax_resnets.runtime import members, parallel
from flax_resnets.training import programs, steps
from flax_resnets.training.checkpoints import Checkpoints


def evaluate_split(
    eval_fn: Callable, model_state: steps.ModelState, feed: Feed, split: str, epoch: int = 0
) -> list[dict[str, Any]] | None:
    """Per member: mean loss, accuracy and confusion matrix (rows: labels) over every example of
    ``split`` once (validation crops of ``epoch``); None for an empty split."""
    if len(getattr(feed.dataset, split)) == 0:
        return None
    sums, constants = None, feed.constants(split)
    batches = -(-len(getattr(feed.dataset, split)) // feed.eval_batch_size)
    description = f"{split} of {len(getattr(feed.dataset, split)):,} images"
    with progress(batches, description, "batch", enabled=jax.process_index() == 0) as bar:
        for inputs in feed.eval_inputs(split, epoch):
            out = eval_fn(model_state, inputs, constants)
            sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
            bar.update()
    results = []
    for member_sums in members.split(jax.device_get(sums), feed.num_seeds):
        count = int(member_sums["count"])
        results.append(
            {
                "loss": float(member_sums["loss"]) / count,
                "accuracy": float(member_sums["correct"]) / count,
                "num_examples": count,
                "confusion": member_sums["confusion"].tolist(),
            }
        )
    return results


def choose_steps(checkpoints: Checkpoints, which: str, num_seeds: int = 1) -> list[int]:
    """The checkpoint of each member: 'best' by its validation accuracy (the latest if the run has
    no validation), 'latest', or a step."""
    latest = checkpoints.latest_step()
    if latest is None and checkpoints.directory.exists() and not checkpoints.directory.is_dir():
        raise InputError(f"{checkpoints.directory} is a file, not the run's checkpoints folder: restore it.")
    if latest is None:
        raise InputError(f"There is no checkpoint in {checkpoints.directory}: train first (--mode=train).")
    if which == "latest":
        return [latest] * num_seeds
    if which == "best":
        best = best_steps(checkpoints.history(latest), num_seeds, checkpoints.steps())
        return [latest if step is None else step for step in best]
    if not (which.isascii() and which.isdigit()):
        raise InputError(f"--checkpoint must be 'best', 'latest' or a step number, got {which!r}.")
    return [checkpoints.require_step(int(which))] * num_seeds


BEST_MARKER = "best.json"  # in the checkpoints folder: which checkpoint is each member's best


def mark_best(checkpoints: Checkpoints, seeds: list[int]) -> None:
    """Write ``checkpoints/best.json``: each member's best checkpoint and its validation accuracy,
    whenever a run ends, stops, resumes or is evaluated (every host reads, the main one writes)."""
    latest = checkpoints.latest_step()
    if latest is None:
        return
    accuracies = {r["step"]: r["seeds"] for r in checkpoints.history(latest)}
    chosen = choose_steps(checkpoints, "best", len(seeds))
    entries = []
    for member, (seed, step) in enumerate(zip(seeds, chosen, strict=True)):
        accuracy = accuracies[step][member]["val_accuracy"] if step in accuracies else None
        entries.append({"seed": seed, "step": step, "val_accuracy": accuracy})
    if jax.process_index() == 0:
        write_json(checkpoints.directory / BEST_MARKER, {"seeds": entries})


def restore_members(
    checkpoints: Checkpoints, member_steps: list[int], abstract_state: steps.ModelState
) -> steps.ModelState:
    """The model state of each member from its own checkpoint (each step read once), as one state."""
    num_seeds = len(member_steps)
    saved = {step: checkpoints.restore_fields(step, abstract_state) for step in sorted(set(member_steps))}
    if len(saved) == 1:  # every member's from one checkpoint
        return saved[member_steps[0]]
    chosen = [members.split(saved[step], num_seeds)[k] for k, step in enumerate(member_steps)]
    return jax.device_put(members.join(chosen), jax.tree.map(lambda x: x.sharding, abstract_state))


def test_report(
    member_steps: list[int],
    model_state: steps.ModelState,
    eval_fn: Callable,
    feed: Feed,
    config: ml_collections.ConfigDict,
) -> dict[str, Any]:
    """The test split's metrics of each member's checkpoint (their model state given), and their
    mean: eval.json. The confusion matrix sums the members'."""
    metrics = evaluate_split(eval_fn, model_state, feed, "test")
    if metrics is None:
        raise InputError(f"The test split of {config.dataset!r} is empty: there is nothing to evaluate.")
    accuracy, accuracy_std = members.mean_and_std([m["accuracy"] for m in metrics])
    return {
        "test_accuracy": accuracy,
        "test_accuracy_std": accuracy_std,
        "test_loss": members.mean_and_std([m["loss"] for m in metrics])[0],
        "num_examples": metrics[0]["num_examples"],
        "checkpoint_step": member_steps[0] if len(member_steps) == 1 else member_steps,
        "dataset": config.dataset,
        "model": config.model,
        "class_names": list(feed.dataset.class_names),
        "confusion": np.sum([m["confusion"] for m in metrics], axis=0).tolist(),
        "seeds": [
            {"seed": seed, "test_accuracy": m["accuracy"], "test_loss": m["loss"], "checkpoint_step": step}
            for seed, m, step in zip(feed.seeds(), metrics, member_steps, strict=True)
        ],
    }


def evaluate_workdir(
    config: ml_collections.ConfigDict | None, workdir: Path, which: str = "best"
) -> dict[str, Any]:
    """``--mode=eval``: test a checkpoint of a run (its model's fields only); the result is written
    by ``write_report``."""
    run = read_run(workdir)
    workdir = run.folder
    if config is None:
        config = ml_collections.ConfigDict(run.config)
    validate_config(config)
    check_same_run(config, workdir, "leave out --config to evaluate the run as it was trained")
    require_writable(workdir / "eval.json", "move it away, the evaluation writes its result", folder=False)
    with Checkpoints(
        workdir / "checkpoints", keep=config.keep_checkpoints, num_seeds=config.num_seeds, read_only=True
    ) as checkpoints:
        # A missing checkpoint fails before any data is read.
        member_steps = choose_steps(checkpoints, which, config.num_seeds)
        is_best = member_steps == choose_steps(checkpoints, "best", config.num_seeds)
        parallel.initialize_distributed(config.distributed)
        dataset = load_config_dataset(config)
        check_same_data(workdir, dataset)
        program = programs.build_programs(
            config, dataset, parallel.make_mesh(config.num_seeds), shapes_only=True
        )
        model_state = restore_members(checkpoints, member_steps, program.state.model_state())
        report = test_report(member_steps, model_state, program.evaluate, program.feed, config)
        mark_best(checkpoints, program.feed.seeds())
    if jax.process_index() == 0:
        write_report(workdir, report, is_best)
    return report


def write_report(workdir: Path, report: dict[str, Any], is_best: bool) -> None:
    """eval.json if the best checkpoint was tested, decided as it is written, under the workdir's
    lock: not while a run trains there (eval.json is the run's to write), nor over a record of a
    later step (a run that ended meanwhile); otherwise ``eval_step<N>.json`` beside it."""
    step = int(np.max(report["checkpoint_step"]))
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(WorkdirLock(workdir))
            training = None
        except InputError:
            training = WorkdirLock.holder(workdir) or "unknown"
        try:
            later = int(np.max(json.loads((workdir / "eval.json").read_text())["checkpoint_step"]))
        except (OSError, ValueError, KeyError, TypeError):  # none, or no record: its place is free
            later = 0
        if training:
            why = f"a run is training in {workdir} (pid {training}), and its eval.json is that run's to write"
        elif later > step:
            why = f"eval.json records a later step ({later}): a run that ended meanwhile wrote it"
        elif not is_best:
            why = "eval.json keeps the best checkpoint's result"
        else:
            write_json(workdir / "eval.json", report)
            write_plots(workdir)
            return
        path = workdir / f"eval_step{step}.json"
        write_json(path, report)
    print(f"wrote {path}: {why}", file=sys.stderr)
