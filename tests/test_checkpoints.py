"""Checkpoints: what a save holds, and what an unreadable one does to a resume or an evaluation."""

import asyncio

import jax
import jax.numpy as jnp
import pytest

from flax_resnets.errors import InputError
from flax_resnets.training.checkpoints import Checkpoints, short_reason, unused_path


def test_the_history_saved_with_a_step_is_the_history_at_that_step(tmp_path):
    with Checkpoints(tmp_path / "checkpoints") as checkpoints:
        history = [{"epoch": 1, "step": 1, "seeds": [{"val_accuracy": 0.5}]}]
        checkpoints.save(1, {"x": jnp.ones(3)}, history)
        history.append({"epoch": 2, "step": 2})  # the loop goes on while orbax writes in the background
        checkpoints.wait()
        assert checkpoints.history(1) == [{"epoch": 1, "step": 1, "seeds": [{"val_accuracy": 0.5}]}]


def test_a_missing_step_is_refused_with_the_saved_ones(tmp_path):
    with Checkpoints(tmp_path / "checkpoints") as checkpoints:
        checkpoints.save(3, {"x": jnp.ones(3)}, [])
        checkpoints.wait()
        with pytest.raises(InputError, match="no checkpoint at step 4 .*saved steps: 3"):
            checkpoints.history(4)


def test_a_step_removed_after_it_was_chosen_is_gone_not_damaged(tmp_path):
    """A training removes old checkpoints as it goes on: an evaluation that chose one before is told
    it is gone, not advised to move a damaged folder (there is none)."""
    import shutil

    with Checkpoints(tmp_path / "checkpoints") as training:
        for step in (1, 2):
            training.save(step, {"x": jnp.ones(3)}, [])
        training.wait()
    with Checkpoints(tmp_path / "checkpoints", read_only=True) as evaluation:
        assert evaluation.steps() == [1, 2]  # chosen from here
        shutil.rmtree(tmp_path / "checkpoints" / "1")  # the training rotates it away
        with pytest.raises(InputError, match="step 1 .* is gone: the run that trained there removed it"):
            evaluation.restore_fields(1, {"x": jax.ShapeDtypeStruct((3,), jnp.float32)})


def test_damaged_folders_never_overwrite_each_other(tmp_path):
    (tmp_path / "9").mkdir()
    (tmp_path / "9.1").mkdir()
    assert unused_path(tmp_path / "9") == tmp_path / "9.2"


def test_reasons_are_one_short_line():
    error = ValueError("OUT_OF_RANGE: bad read [tensorstore_spec='{\"a\": 1}']\nmore")
    assert short_reason(error) == "OUT_OF_RANGE: bad read"
    assert len(short_reason(ValueError("x" * 500))) == 160


def test_a_checkpoint_of_other_shapes_is_refused_as_another_model_not_moved_as_damage(tmp_path):
    import jax

    with Checkpoints(tmp_path / "checkpoints") as checkpoints:
        checkpoints.save(1, {"x": jnp.ones(3), "y": jnp.ones((2, 2))}, [])
        checkpoints.wait()
        other = {"x": jax.ShapeDtypeStruct((4,), jnp.float32), "y": jax.ShapeDtypeStruct((2, 2), jnp.float32)}
        with pytest.raises(InputError, match=r"holds a model of other shapes .*\(3,\) there, \(4,\) now"):
            checkpoints.restore_latest_readable(other)
        with pytest.raises(InputError, match="other shapes"):
            checkpoints.restore_fields(1, {"x": other["x"]})
        assert checkpoints.steps() == [1] and not (tmp_path / "damaged_checkpoints").exists()
        same = {"x": jax.ShapeDtypeStruct((3,), jnp.float32)}
        assert checkpoints.restore_fields(1, same)["x"].tolist() == [1.0, 1.0, 1.0]


def test_checkpoints_leave_no_hook_and_after_a_failure_quiet_only_orbax_noise(tmp_path, caplog):
    import logging
    import sys

    from flax_resnets.training.checkpoints import OrbaxFailureNoise

    hooks = sys.excepthook, sys.unraisablehook
    with Checkpoints(tmp_path / "checkpoints"):
        assert sys.excepthook is not hooks[0]
    assert (sys.excepthook, sys.unraisablehook) == hooks

    noise = OrbaxFailureNoise()
    noise.quiet()
    noise.failed = True
    noise.restore()  # after a failure: the threads that make the noise outlive the checkpoints
    try:
        logging.getLogger("asyncio").error("Future exception was never retrieved\nfuture: <Future ...>")
        logging.getLogger("asyncio").error("Task was destroyed but it is pending!")
        orbax_file = "/site-packages/orbax/checkpoint/future.py"
        orbax_error = logging.LogRecord("absl", logging.ERROR, orbax_file, 1, "failed", (), None)
        logging.getLogger("absl").handle(orbax_error)
        logging.getLogger("absl").error("not orbax's")
        assert [record.getMessage() for record in caplog.records] == [
            "Task was destroyed but it is pending!",
            "not orbax's",
        ]
    finally:
        noise.failed = False
        noise.restore()
    assert (sys.excepthook, sys.unraisablehook) == hooks


def test_every_kind_of_unretrieved_future_asyncio_logs_after_a_failed_write_is_quieted():
    """A failed write leaves futures that asyncio reports as they are collected, under their class
    names: each is quieted, and asyncio's other records are not."""
    import logging

    from flax_resnets.training.checkpoints import not_an_unretrieved_future

    def record(message):
        return logging.LogRecord("asyncio", logging.ERROR, "base_events.py", 1, message, None, None)

    for kind in ("Future", "Task", "_GatheringFuture"):
        assert not not_an_unretrieved_future(record(f"{kind} exception was never retrieved"))
    assert not_an_unretrieved_future(record("Executing <Task> took 0.2 seconds"))


def test_closing_waits_for_the_clean_up_of_temporary_folders_started_on_opening(tmp_path, monkeypatch):
    """A run that ends before its first save (a full disk while writing config.json) closed its
    checkpoints while orbax still cleaned up in the background, and exited under it: a traceback."""
    from orbax.checkpoint._src.path import temporary_paths

    finished = []
    cleanup = temporary_paths.cleanup_temporary_paths

    async def slow_cleanup(*args, **kwargs):
        await asyncio.sleep(0.5)
        await cleanup(*args, **kwargs)
        finished.append(True)

    monkeypatch.setattr(temporary_paths, "cleanup_temporary_paths", slow_cleanup)
    with Checkpoints(tmp_path / "checkpoints"):
        pass
    assert finished == [True]
