"""The training loop, top to bottom: check, read data, init or resume, train, validate, checkpoint,
test the best checkpoint. The same command again in the same workdir resumes from the latest
checkpoint and ends with the metrics and parameters of a run that never stopped.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from flax_resnets.checks import validate_config
from flax_resnets.data.order import check_batch_size
from flax_resnets.data.sources import load_config_dataset
from flax_resnets.errors import InputError
from flax_resnets.files import WorkdirLock, require_writable, write_json
from flax_resnets.interrupts import StopRequests
from flax_resnets.progress import progress
from flax_resnets.runs.metrics import EpochReport, epoch_summary, member_means, member_records, progress_means
from flax_resnets.runs.plots import write_plots
from flax_resnets.runs.provenance import run_record
from flax_resnets.runs.workdir import (
    DATA_RECORD,
    check_continuable,
    check_same_data,
    check_same_run,
    config_dict,
)
from flax_resnets.runtime import members, parallel
from flax_resnets.training import programs, steps
from flax_resnets.training.checkpoints import Checkpoints
from flax_resnets.training.evaluate import (
    choose_steps,
    evaluate_split,
    mark_best,
    restore_members,
    test_report,
)


class TrainingDivergedError(RuntimeError):
    """The loss or the gradients became NaN or infinite; the checkpoints saved before are kept."""


class TrainingStoppedError(RuntimeError):
    """Training was asked to stop (SIGTERM, SIGINT) and saved a checkpoint it can resume from."""

    def __init__(self, message: str, exit_status: int):
        super().__init__(message)
        self.exit_status = exit_status


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Train ``config`` in ``workdir`` (resuming what is there), then test the best checkpoint."""
    workdir = Path(workdir)
    program, fingerprint = prepare(config, workdir)
    is_main = jax.process_index() == 0  # the one process that writes files and prints
    # Saves in flight finish, and files close, however the run ends (a diverged loss included).
    with contextlib.ExitStack() as exit_stack:
        if is_main:  # one run per workdir; checked again under the lock, a run may have just begun
            require_writable(workdir / "checkpoints", "free or fix that place, or use another --workdir")
            exit_stack.enter_context(WorkdirLock(workdir))
            check_same_run(config, workdir)
            check_same_data(workdir, program.feed.dataset, fingerprint)
        checkpoints = exit_stack.enter_context(
            Checkpoints(workdir / "checkpoints", keep=config.keep_checkpoints, num_seeds=config.num_seeds)
        )
        state, history = resume(program, checkpoints, workdir, is_main)
        report = None
        if is_main:
            write_json(workdir / "config.json", config_dict(config))
            write_json(workdir / DATA_RECORD, fingerprint)
            report = exit_stack.enter_context(contextlib.closing(EpochReport(workdir, history)))
        trains = int(members.split(state.step, config.num_seeds)[0]) < program.total_steps
        state = train(program, state, history, checkpoints, report)
        return test(program, state, history, checkpoints, workdir, trains=trains)


def prepare(config: ml_collections.ConfigDict, workdir: Path) -> tuple[programs.Programs, dict[str, Any]]:
    """Check everything, read the data, build the members and their programs, and fingerprint the
    data; refuse bad input before reading data or compiling anything, and write nothing."""
    validate_config(config)
    require_writable(workdir, "pass a folder for the run (--workdir)")
    parallel.initialize_distributed(config.distributed)
    check_batch_size(config.batch_size, jax.process_count(), jax.local_device_count(), config.num_seeds)
    check_same_run(config, workdir)
    check_continuable(workdir)
    dataset = load_config_dataset(config)
    require_trainable(config, dataset)
    fingerprint = dataset.fingerprint()
    check_same_data(workdir, dataset, fingerprint)
    return programs.build_programs(config, dataset, parallel.make_mesh(config.num_seeds)), fingerprint


def resume(
    program: programs.Programs, checkpoints: Checkpoints, workdir: Path, is_main: bool
) -> tuple[steps.TrainState, list[dict]]:
    """The state and epoch records to go on from: the latest readable checkpoint's, or the start's."""
    config = program.config
    abstract = parallel.abstract(program.state, program.mesh)
    restored = checkpoints.restore_latest_readable(abstract)
    if restored is None:
        return program.state, []
    state, history = restored
    step = int(members.split(state.step, config.num_seeds)[0])  # the same in every member
    if is_main:
        print(f"Resuming {workdir} from step {step} of {program.total_steps}.", flush=True)
    mark_best(checkpoints, program.feed.seeds())
    return state, history


def train(
    program: programs.Programs,
    state: steps.TrainState,
    history: list[dict],
    checkpoints: Checkpoints,
    report: EpochReport | None,
) -> steps.TrainState:
    """Train from ``state``'s step to the end, every epoch validated, recorded and checkpointed; SIGTERM
    or a first Ctrl-C saves a checkpoint and stops (``TrainingStoppedError``)."""
    config = program.config
    step = int(members.split(state.step, config.num_seeds)[0])
    compiled: set[int] = set()  # the call lengths compiled so far
    with StopRequests() as stop:  # while training: after it, Ctrl-C is the command's (nothing to save)
        for epoch in range(step // program.feed.epoch_steps, config.num_epochs):
            first_step = step % program.feed.epoch_steps
            started = time.perf_counter()
            state, step = train_epoch(program, state, epoch, first_step, checkpoints, history, stop, compiled)
            images = (program.feed.epoch_steps - first_step) * config.batch_size * config.num_seeds
            train_seconds = time.perf_counter() - started
            seeds = validate(program, state, epoch, step, checkpoints)
            record = {
                "epoch": epoch + 1,
                "step": step,
                **member_means(seeds),
                "learning_rate": float(program.schedule(step - 1)),  # the epoch's last step's
                "seconds": time.perf_counter() - started,
                "images_per_second": images / train_seconds,  # summed over the members: the device's
                "seeds": seeds,
            }
            history.append(record)
            checkpoints.save(step, state, history)
            if report:
                report.write(record)
                print(epoch_summary(record), flush=True)
            stop_if_requested(stop, program, state, step, checkpoints, history)
    return state


def train_epoch(
    program: programs.Programs,
    state: steps.TrainState,
    epoch: int,
    first_step: int,
    checkpoints: Checkpoints,
    history: list[dict],
    stop: StopRequests,
    compiled: set[int],
) -> tuple[steps.TrainState, int]:
    """Epoch ``epoch`` from its step ``first_step`` to its end, with a progress bar whose rate leaves
    out compiling (a call of a length not in ``compiled`` compiles: its time is said in a line); the
    state and the run's step after it."""
    config, num_seeds, epoch_steps = program.config, program.config.num_seeds, program.feed.epoch_steps
    if first_step == 0:
        zero = parallel.place_state(steps.zero_epoch_sums(num_seeds), program.mesh)
        state = state.replace(epoch_sums=zero)
    step = epoch * epoch_steps + first_step
    calls = program.feed.train_calls(epoch=epoch, start_step=first_step, steps_per_call=config.steps_per_call)
    show = jax.process_index() == 0
    description = f"epoch {epoch + 1}/{config.num_epochs}"
    with progress(epoch_steps, description, "step", initial=first_step, enabled=show, in_logs=True) as bar:
        for inputs, done in calls:
            began = time.perf_counter()
            state = program.train(state, inputs, program.feed.constants("train"), done)
            if done not in compiled and show:  # compiled by this call, before the device ran it
                bar.compiled(f"the training call of {done} step(s)", time.perf_counter() - began)
            compiled.add(done)
            step += done
            bar.update(done)
            if passed_multiple(step, done, config.log_every_steps):
                bar.set_postfix(progress_means(running_means(state, num_seeds)))
            # Every checkpoint_every_steps steps, but at an epoch's end (which saves with its metrics).
            if passed_multiple(step, done, config.checkpoint_every_steps) and step % epoch_steps:
                checkpoints.save(step, require_finite(state, step, checkpoints, config.dtype), history)
            if step % epoch_steps:  # at the epoch's end, train() validates and records it first
                stop_if_requested(stop, program, state, step, checkpoints, history)
    return state, step


def validate(
    program: programs.Programs, state: steps.TrainState, epoch: int, step: int, checkpoints: Checkpoints
) -> list[dict]:
    """Each member's entry of the epoch's record: its training means and its validation."""
    config = program.config
    train_means = running_means(require_finite(state, step, checkpoints, config.dtype), config.num_seeds)
    val = evaluate_split(program.validate, state.model_state(), program.feed, "validation", epoch)
    return member_records(program.feed.seeds(), train_means, val or [None] * config.num_seeds)


def stop_if_requested(
    stop: StopRequests,
    program: programs.Programs,
    state: steps.TrainState,
    step: int,
    checkpoints: Checkpoints,
    history: list[dict],
) -> None:
    """On a stop request (SIGTERM, a first Ctrl-C): save ``step``'s checkpoint if it is not yet,
    wait for it, and stop with ``TrainingStoppedError``."""
    if not stop.requested(step):
        return
    if checkpoints.latest_step() != step:
        checkpoints.save(step, require_finite(state, step, checkpoints, program.config.dtype), history)
    checkpoints.wait()
    mark_best(checkpoints, program.feed.seeds())
    raise TrainingStoppedError(
        f"Stopped at step {step} of {program.total_steps} on request; the checkpoint is saved: "
        "run the same command to resume.",
        stop.exit_status(),
    )


def test(
    program: programs.Programs,
    state: steps.TrainState,
    history: list[dict],
    checkpoints: Checkpoints,
    workdir: Path,
    *,
    trains: bool,
) -> dict[str, Any]:
    """Test each member's best checkpoint: eval.json, run.json (by the run that trained: a finished
    run's command run again only tests again) and the plots."""
    config = program.config
    checkpoints.wait()
    mark_best(checkpoints, program.feed.seeds())
    best = choose_steps(checkpoints, "best", config.num_seeds)
    abstract_model = parallel.abstract(state.model_state(), program.mesh)
    model_state = restore_members(checkpoints, best, abstract_model)
    result = test_report(best, model_state, program.evaluate, program.feed, config)
    if jax.process_index() == 0:
        write_json(workdir / "eval.json", result)
        if trains or not (workdir / "run.json").exists():  # the record of the machine that trained
            write_json(workdir / "run.json", run_record(config, program.feed.dataset, history))
        write_plots(workdir)
    return result


def require_trainable(config: ml_collections.ConfigDict, dataset: Any) -> None:
    """Refuse data that cannot make a run, before anything is compiled or written: one class, no
    training images after the cut, no test images."""
    if dataset.num_classes < 2:
        raise InputError(
            f"{config.dataset!r} has {dataset.num_classes} class: a classifier needs at least 2 "
            "(put each class's images in its own folder)."
        )
    if len(dataset.train) == 0:
        raise InputError(
            f"validation_fraction={config.validation_fraction} leaves no training images of "
            f"{len(dataset.train) + len(dataset.validation)}: lower it."
        )
    if len(dataset.test) == 0:
        raise InputError(f"The test split of {config.dataset!r} is empty: add images to test the run on.")


def passed_multiple(step: int, done: int, every: int) -> bool:
    """Whether the last ``done`` steps, ending at ``step``, reached a multiple of ``every``."""
    return bool(every) and step // every > (step - done) // every


def running_means(state: steps.TrainState, num_seeds: int) -> list[dict[str, float]]:
    """Each member's mean training loss and accuracy over the epoch so far."""
    means = []
    for member in members.split(jax.device_get(state.epoch_sums), num_seeds):
        count = max(float(member["count"]), 1.0)
        means.append({"loss": float(member["loss"]) / count, "accuracy": float(member["correct"]) / count})
    return means


def require_finite(
    state: steps.TrainState, step: int, checkpoints: Checkpoints, dtype: str
) -> steps.TrainState:
    """Stop, before anything is saved, once a step of this epoch had a non-finite loss or gradient
    (in any member)."""
    sums = jax.device_get(state.epoch_sums)
    if np.any(sums["nonfinite_steps"] > 0) or not np.all(np.asarray(sums["loss"]) < float("inf")):
        latest = checkpoints.latest_step()
        kept = f"the checkpoint of step {latest} is kept" if latest is not None else "no checkpoint was saved"
        fix = "lower the learning rate" + (" or use float32" if dtype != "float32" else "")
        raise TrainingDivergedError(
            f"The training loss or gradients became NaN or infinite before step {step}; training "
            f"stopped and {kept}: {fix}, and start a new workdir."
        )
    return state
