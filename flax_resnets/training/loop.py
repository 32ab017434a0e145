"""The training loop, top to bottom: check, read data, init or resume, train, validate,
checkpoint, test the best checkpoint.

Every batch is split over all devices of the mesh; a rerun of the same command in the same
workdir resumes from the latest checkpoint and finishes with the same metrics and parameters
as a run that never stopped.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
from tqdm import tqdm

from flax_resnets.config import (
    DATA_RECORD,
    check_same_data,
    check_same_run,
    check_workdir,
    config_dict,
    validate_config,
)
from flax_resnets.data.order import check_batch_size, steps_per_epoch
from flax_resnets.data.pipelines import make_feed
from flax_resnets.data.sources import load_config_dataset
from flax_resnets.errors import InputError
from flax_resnets.files import WorkdirLock, require_writable, write_json
from flax_resnets.runs.metrics import EpochReport
from flax_resnets.runs.plots import write_plots
from flax_resnets.runs.provenance import run_record
from flax_resnets.runtime import parallel
from flax_resnets.training import steps
from flax_resnets.training.checkpoints import Checkpoints
from flax_resnets.training.evaluate import (
    choose_step,
    compile_eval_step,
    eval_batch_size,
    evaluate_split,
    test_report,
)


class TrainingDivergedError(RuntimeError):
    """The loss or the gradients became NaN or infinite; the last good checkpoint is kept."""


class TrainingStoppedError(RuntimeError):
    """Training was asked to stop (SIGTERM, SIGINT) and saved a checkpoint it can resume from."""

    def __init__(self, message: str, exit_status: int):
        super().__init__(message)
        self.exit_status = exit_status


class StopSignals:
    """SIGTERM (a scheduler's preemption, a sweep's time budget) and SIGINT (Ctrl-C) become a
    request that the loop answers after the call in flight: save a checkpoint, then stop. A
    second signal stops at once. On several hosts, JAX's preemption sync point makes all of them
    stop at the same step (jax.distributed listens for SIGTERM itself)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict = {}

    def __enter__(self) -> StopSignals:
        # With several processes, JAX's own preemption notifier must keep SIGTERM.
        if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
            self.previous = {number: signal.signal(number, self.handle) for number in self.SIGNALS}
        return self

    def handle(self, number: int, frame: object) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = number

    def requested(self, step: int) -> bool:
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            return multihost_utils.reached_preemption_sync_point(step)
        return self.received is not None

    def exit_status(self) -> int:
        return 128 + (self.received or signal.SIGTERM)

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Train ``config`` in ``workdir`` (resuming what is there), then test the best checkpoint."""
    workdir = Path(workdir)
    # Refuse bad input before reading data or compiling anything; write nothing until then.
    validate_config(config)
    check_workdir(workdir)
    parallel.initialize_distributed(config.distributed)
    check_batch_size(config.batch_size, jax.process_count(), jax.local_device_count())
    check_same_run(config, workdir)
    dataset = load_config_dataset(config)
    epoch_steps = steps_per_epoch(len(dataset.train), config.batch_size)
    if epoch_steps == 0:
        raise InputError(
            f"batch_size={config.batch_size} is larger than the {len(dataset.train)} training examples "
            f"of {config.dataset!r}: use a smaller batch_size."
        )
    total_steps = epoch_steps * config.num_epochs
    data_fingerprint = dataset.fingerprint()
    check_same_data(workdir, data_fingerprint)

    # Model, optimizer and compiled steps, replicated over the mesh.
    mesh = parallel.data_parallel_mesh()
    optimizer, schedule = steps.make_optimizer(config, total_steps)
    graphdef, state = steps.create_train_state(
        config, num_classes=dataset.num_classes, input_channels=dataset.channels, optimizer=optimizer
    )
    state = parallel.replicate(state, mesh)
    feed = make_feed(config, dataset, mesh, eval_batch_size=eval_batch_size(config))

    train_fn = steps.jit_train_steps(
        graphdef, optimizer, feed.train_batch, mesh, label_smoothing=config.label_smoothing
    )
    train_data = feed.constants("train")
    eval_fn = compile_eval_step(graphdef, feed, mesh, flip=config.eval_flip)

    # Saves in flight finish, and files close, however the loop ends (a diverged loss included).
    with contextlib.ExitStack() as exit_stack:
        is_main = jax.process_index() == 0  # the one process that writes files and prints
        if is_main:  # one run per workdir; checked again under the lock, a run may have just begun
            checkpoint_dir = workdir / "checkpoints"
            require_writable(checkpoint_dir if checkpoint_dir.exists() else workdir, "checkpoints")
            exit_stack.enter_context(WorkdirLock(workdir))
            check_same_run(config, workdir)
            check_same_data(workdir, data_fingerprint)
        # Resume from the latest readable checkpoint, if any.
        checkpoints = exit_stack.enter_context(
            Checkpoints(workdir / "checkpoints", keep=config.keep_checkpoints)
        )
        history: list[dict] = []
        restored = checkpoints.restore_latest_readable(parallel.abstract(state, mesh))
        if restored is not None:
            state, history = restored
            if is_main:
                print(f"Resuming {workdir} from step {int(state.step)} of {total_steps}.", flush=True)
        step = int(state.step)
        if is_main:
            write_json(workdir / "config.json", config_dict(config))
            write_json(workdir / DATA_RECORD, data_fingerprint)
        report = exit_stack.enter_context(EpochReport(workdir, history)) if is_main else None
        stop = exit_stack.enter_context(StopSignals())

        def stop_if_requested(step: int) -> None:
            if stop.requested(step):
                if checkpoints.latest_step() != step:
                    checkpoints.save(step, require_finite(state, step), history)
                checkpoints.wait()
                raise TrainingStoppedError(
                    f"Stopped at step {step} of {total_steps} on request; the checkpoint is saved: "
                    "run the same command to resume.",
                    stop.exit_status(),
                )

        for epoch in range(step // epoch_steps, config.num_epochs):
            first_step = step % epoch_steps
            if first_step == 0:
                state = state.replace(epoch_sums=parallel.replicate(steps.zero_epoch_sums(), mesh))
            started = time.perf_counter()
            with progress_bar(epoch, config.num_epochs, epoch_steps, first_step, enabled=is_main) as progress:
                calls = feed.train_calls(
                    epoch=epoch, start_step=first_step, steps_per_call=config.steps_per_call
                )
                for inputs, done in calls:
                    state = train_fn(state, inputs, train_data, done)
                    step += done
                    progress.update(done)
                    if passed_multiple(step, done, config.log_every_steps):
                        progress.set_postfix(running_means(state))
                    if mid_epoch_checkpoint_due(config, step, done, epoch_steps):
                        checkpoints.save(step, require_finite(state, step), history)
                    stop_if_requested(step)
            train_seconds = time.perf_counter() - started

            train = running_means(require_finite(state, step))
            val = evaluate_split(eval_fn, state.model_state(), feed, "validation")
            record = {
                "epoch": epoch + 1,
                "step": step,
                "train_loss": train["loss"],
                "train_accuracy": train["accuracy"],
                "val_loss": val["loss"] if val else None,
                "val_accuracy": val["accuracy"] if val else None,
                "learning_rate": float(schedule(step)),
                "seconds": time.perf_counter() - started,
                "images_per_second": (epoch_steps - first_step) * config.batch_size / train_seconds,
            }
            history.append(record)
            checkpoints.save(step, state, history, val_accuracy=record["val_accuracy"])
            if report:
                report.write(record)
                print(epoch_summary(record), flush=True)
            stop_if_requested(step)

        checkpoints.wait()
        best = choose_step(checkpoints, "best")
        model_state = checkpoints.restore_fields(best, parallel.abstract(state.model_state(), mesh))
        result = test_report(best, model_state, eval_fn, feed, config)
        if is_main:
            write_json(workdir / "eval.json", result)
            write_json(workdir / "run.json", run_record(config, dataset, history))
            write_plots(workdir)
        return result


def progress_bar(epoch: int, num_epochs: int, epoch_steps: int, first_step: int, *, enabled: bool) -> tqdm:
    return tqdm(
        total=epoch_steps,
        initial=first_step,
        desc=f"epoch {epoch + 1}/{num_epochs}",
        unit="step",
        disable=not enabled,
        dynamic_ncols=True,
        mininterval=1 if sys.stderr.isatty() else 30,  # a log file gets a line now and then
    )


def passed_multiple(step: int, done: int, every: int) -> bool:
    """Whether the last ``done`` steps, ending at ``step``, reached a multiple of ``every``."""
    return bool(every) and step // every > (step - done) // every


def mid_epoch_checkpoint_due(
    config: ml_collections.ConfigDict, step: int, done: int, epoch_steps: int
) -> bool:
    """Every checkpoint_every_steps steps (at the end of the call that reaches it), except at an
    epoch's end, which saves with its metrics."""
    return passed_multiple(step, done, config.checkpoint_every_steps) and step % epoch_steps != 0


def running_means(state: steps.TrainState) -> dict[str, float]:
    sums = jax.device_get(state.epoch_sums)
    count = max(float(sums["count"]), 1.0)
    return {"loss": float(sums["loss"]) / count, "accuracy": float(sums["correct"]) / count}


def require_finite(state: steps.TrainState, step: int) -> steps.TrainState:
    """Stop, before anything is saved, once a step of this epoch had a non-finite loss or gradient."""
    sums = jax.device_get(state.epoch_sums)
    if sums["nonfinite_steps"] > 0 or not float(sums["loss"]) < float("inf"):
        raise TrainingDivergedError(
            f"The training loss or gradients became NaN or infinite before step {step}; training "
            "stopped and the last good checkpoint is kept: lower the learning rate (or use float32) "
            "and start a new workdir."
        )
    return state


def epoch_summary(record: dict) -> str:
    val = (
        f"val loss {record['val_loss']:.4f} acc {record['val_accuracy']:.2%}"
        if record["val_accuracy"] is not None
        else "no validation split"
    )
    return (
        f"epoch {record['epoch']} step {record['step']}: train loss {record['train_loss']:.4f} "
        f"acc {record['train_accuracy']:.2%}, {val}, lr {record['learning_rate']:.2e}, "
        f"{record['seconds']:.1f}s, {record['images_per_second']:.0f} images/s"
    )
