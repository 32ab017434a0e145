"""Checkpoints of a run (orbax's CheckpointManager): the training state and the history, all that
continuing exactly needs. One policy (``LatestAndBest``) keeps the latest ``keep`` and each member's
best epoch (``runs.metrics.best_steps``); a checkpoint damaged later is moved aside on resume.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import logging
import os
import re
import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from flax_resnets.errors import InputError, only_logged_errors, warn
from flax_resnets.files import WorkdirLock
from flax_resnets.runs.metrics import best_steps
from flax_resnets.runs.workdir import checkpoint_steps

DAMAGED = "damaged_checkpoints"


class UnreadableCheckpointError(InputError):
    """A checkpoint's files cannot be read back."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (a full disk, a file-size limit, a folder made read-only
    while the run trained); the complete checkpoints written before it are kept."""


class LatestAndBest:
    """Orbax's preservation policy of a run: its latest ``keep`` checkpoints, and each member's best
    epoch (``best_steps``) by the history given with the newest save."""

    def __init__(self, keep: int, num_seeds: int):
        self.keep, self.num_seeds, self.history = keep, num_seeds, []

    def should_preserve(self, checkpoints: list[Any], *, context: Any) -> list[bool]:
        saved = [checkpoint.step for checkpoint in checkpoints]
        kept = set(sorted(saved)[-self.keep :]) | set(best_steps(self.history, self.num_seeds, saved))
        return [step in kept for step in saved]


class Checkpoints:
    def __init__(self, directory: Path, *, keep: int = 3, num_seeds: int = 1, read_only: bool = False):
        self.policy, self.num_seeds = LatestAndBest(keep, num_seeds), num_seeds
        self.directory = Path(directory).absolute()
        self.failed_write: CheckpointWriteError | None = None
        self.noise = OrbaxFailureNoise()
        self.noise.quiet()
        with only_logged_errors():  # orbax's notices that a read-only manager saves nothing
            self.manager = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(
                    preservation_policy=self.policy,
                    cleanup_tmp_directories=not read_only,
                    read_only=read_only,
                    create=not read_only,
                ),
                item_names=("state", "history"),
            )

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, history: list[dict]) -> None:
        """Save asynchronously; the history (copied now: orbax writes it in the background while the
        caller appends to it) decides which checkpoints are kept."""
        self.policy.history = copy.deepcopy(history)
        with self.writing():  # the previous save, if it failed, fails here
            self.manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.PyTreeSave(state), history=ocp.args.JsonSave(self.policy.history)
                ),
            )

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """A failure of orbax's writer (now, or of a save in flight) as one CheckpointWriteError."""
        if self.failed_write is not None:
            raise self.failed_write
        try:
            yield
        except Exception as error:
            self.noise.fail()
            saved = checkpoint_steps(self.directory)
            kept = f"the checkpoint of step {saved[-1]} is kept" if saved else "no checkpoint was saved"
            self.failed_write = CheckpointWriteError(
                f"A checkpoint could not be written in {self.directory} ({write_failure(error)}); {kept}: "
                "free space there (or lift the limit on file sizes), then run the same command to resume."
            )
            raise self.failed_write from error

    def require_step(self, step: int) -> int:
        """``step``, or a refusal that names the saved steps."""
        if step not in self.steps():
            raise InputError(
                f"There is no checkpoint at step {step} in {self.directory}; "
                f"saved steps: {', '.join(map(str, self.steps())) or 'none'}."
            )
        return step

    def require_shapes(self, step: int, abstract_state: Any, *, partial: bool = False) -> None:
        """Refuse, as other data or another model, a checkpoint whose arrays lack the shapes
        ``abstract_state`` wants (``partial``: among others); unreadable metadata is left to the
        restore."""
        try:
            with only_logged_errors():  # orbax's notice that a step-level metadata file is elsewhere
                item = ocp.PyTreeCheckpointer().metadata(self.directory / str(step) / "state")
            leaves = jax.tree.leaves(item.item_metadata)
        except Exception:  # orbax raises many types for unreadable files
            return
        saved = collections.Counter(tuple(leaf.shape) for leaf in leaves if hasattr(leaf, "shape"))
        wanted = collections.Counter(tuple(leaf.shape) for leaf in jax.tree.leaves(abstract_state))
        missing, extra = wanted - saved, saved - wanted
        if saved and (missing or (extra and not partial)):
            there = ", ".join(map(str, sorted(extra)[:3])) or "none"
            now = ", ".join(map(str, sorted(missing)[:3])) or "none"
            raise InputError(
                f"The checkpoint at step {step} in {self.directory} holds a model of other shapes than this "
                f"config and data make (arrays {there} there, {now} now): train or evaluate it with the "
                "config and data (and the version) it was made with, or use a new --workdir."
            )

    def _restore(self, step: int, **items: Any) -> Any:
        self.require_step(step)
        try:
            return self.manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as error:  # orbax raises many types for unreadable files
            self.noise.fail()
            training = WorkdirLock.holder(self.directory.parent)
            if training is not None:
                raise InputError(
                    f"The checkpoint at step {step} in {self.directory} changed while it was read: the run "
                    f"training there (pid {training}) saves and removes checkpoints as it goes; try again, "
                    "or once it has ended."
                ) from error
            if not (self.directory / str(step)).exists():
                raise InputError(
                    f"The checkpoint at step {step} in {self.directory} is gone: the run that trained there "
                    "removed it as it went on (a run keeps its latest checkpoints and each member's best); "
                    "run the same command again to use the checkpoints there now."
                ) from error
            raise UnreadableCheckpointError(
                f"The checkpoint at step {step} in {self.directory} cannot be read ({type(error).__name__}: "
                f"{short_reason(error)}); move that step's folder away to use an earlier checkpoint, "
                "or start a new workdir."
            ) from error

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, list[dict]]:
        """The state (laid out like ``abstract_state``) and history saved at ``step``."""
        state, restored = self._restore_state(step, abstract_state, history=ocp.args.JsonRestore())
        return state, list(restored["history"])

    def restore_fields(self, step: int, abstract_fields: dict[str, Any]) -> dict[str, Any]:
        """Only some fields of the saved state (e.g. the model's, to evaluate it), laid out like
        ``abstract_fields``: the optimizer state is never read."""
        return self._restore_state(step, abstract_fields, partial=True)[0]

    def _restore_state(
        self, step: int, abstract: Any, *, partial: bool = False, **items: Any
    ) -> tuple[Any, Any]:
        """The saved state laid out like ``abstract``, and everything restored with it (``items``)."""
        self.require_shapes(step, abstract, partial=partial)
        restored = self._restore(step, state=pytree_restore(abstract, partial=partial), **items)
        return restored["state"], restored

    def history(self, step: int) -> list[dict]:
        """The epoch records saved with the checkpoint at ``step``."""
        return list(self._restore(step, history=ocp.args.JsonRestore())["history"])

    def restore_latest_readable(self, abstract_state: Any) -> tuple[Any, list[dict]] | None:
        """The newest checkpoint that reads back, or None; unreadable newer ones are moved to
        ``damaged_checkpoints/`` (the run can save those steps again), each with a warning."""
        for step in reversed(self.steps()):
            try:
                return self.restore(step, abstract_state)
            except UnreadableCheckpointError as error:
                moved = unused_path(self.directory.parent / DAMAGED / str(step))
                if jax.process_index() == 0:
                    moved.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(self.directory / str(step)), str(moved))
                    warn(f"{str(error).split('; move')[0]}; moved it to {moved}")
                if jax.process_count() > 1:  # every host sees the move before it looks again
                    multihost_utils.sync_global_devices(f"moved damaged checkpoint {step}")
                self.manager.reload()
        return None

    def wait(self) -> None:
        with self.writing():
            self.manager.wait_until_finished()

    def close(self) -> None:
        """Wait for saves in flight, then release the manager; after a failed write, only release it."""
        try:
            if self.failed_write is None:
                with self.writing():
                    # orbax's close leaves its start's clean-up of temporary folders running: a run
                    # that ends before its first save would exit under it (a traceback at exit).
                    getattr(self.manager, "_maybe_await_cleanup_tmp_directory", lambda: None)()
                    self.manager.close()
            else:
                with contextlib.suppress(Exception):
                    self.manager.close()
        finally:
            self.noise.restore()

    def __enter__(self) -> Checkpoints:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_failure(error: BaseException) -> str:
    """Why a write failed: the system's words where tensorstore gives an OS error code (``File too
    large``, ``No space left on device``), else the error's first line."""
    # Tensorstore's errors reach us as orbax's re-raised ValueErrors with the code in their text
    # only (no errno attribute); tests/test_workdir.py's write under a file-size limit checks this
    # reading against the installed versions.
    code = re.search(r"os_error_code='(\d+)'", str(error))
    return os.strerror(int(code.group(1))) if code else f"{type(error).__name__}: {short_reason(error)}"


def short_reason(error: BaseException, limit: int = 160) -> str:
    """The first line of an error, without tensorstore's spec, at most ``limit`` characters."""
    text = (str(error).splitlines() or ["no details"])[0].split(" [tensorstore_spec")[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


class OrbaxFailureNoise:
    """What orbax prints when a write or read fails, besides the exception a command says in one line
    (its threads' tracebacks, tensorstore calling its closed event loop, asyncio's unretrieved
    futures: hundreds of lines): ``quiet`` drops exactly those, for good after a failure."""

    def __init__(self) -> None:
        self.failed = False
        self.previous_hooks = sys.unraisablehook, sys.excepthook

    def quiet(self) -> None:
        self.previous_hooks = sys.unraisablehook, sys.excepthook
        sys.unraisablehook, sys.excepthook = self.unraisable_hook, self.except_hook
        logging.getLogger("absl").addFilter(not_an_orbax_error)  # orbax logs through absl
        logging.getLogger("asyncio").addFilter(not_an_unretrieved_future)

    def fail(self) -> None:
        """After a failure: for good, also the warnings of orbax's coroutines it left unawaited."""
        self.failed = True
        warnings.filterwarnings("ignore", r"coroutine '.*' was never awaited", RuntimeWarning)

    def restore(self) -> None:
        if self.failed:
            return
        sys.unraisablehook, sys.excepthook = self.previous_hooks
        logging.getLogger("absl").removeFilter(not_an_orbax_error)
        logging.getLogger("asyncio").removeFilter(not_an_unretrieved_future)

    def unraisable_hook(self, unraisable: Any) -> None:
        if not closed_loop(unraisable.exc_value):
            self.previous_hooks[0](unraisable)

    def except_hook(self, kind: type, value: BaseException, traceback: Any) -> None:
        if not closed_loop(value):
            self.previous_hooks[1](kind, value, traceback)


def closed_loop(error: BaseException | None) -> bool:
    return isinstance(error, RuntimeError) and str(error) == "Event loop is closed"


def not_an_orbax_error(record: logging.LogRecord) -> bool:
    # Orbax logs through absl's one logger: where a record comes from is only in its path.
    return not (record.levelno >= logging.ERROR and "/orbax/" in record.pathname.replace("\\", "/"))


def not_an_unretrieved_future(record: logging.LogRecord) -> bool:
    """asyncio's "<Future, Task or _GatheringFuture> exception was never retrieved"."""
    return "exception was never retrieved" not in record.getMessage()


def pytree_restore(abstract: Any, *, partial: bool = False) -> ocp.args.PyTreeRestore:
    """Restore arguments that lay arrays out like ``abstract`` (shapes, dtypes, shardings);
    ``partial``: only the fields ``abstract`` has."""
    restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)
    return ocp.args.PyTreeRestore(abstract, restore_args=restore_args, partial_restore=partial)


def unused_path(path: Path) -> Path:
    """``path``, or ``path.1``, ``path.2``... if it exists: nothing damaged is ever overwritten."""
    candidate, index = path, 0
    while candidate.exists():
        index += 1
        candidate = path.with_name(f"{path.name}.{index}")
    return candidate
