"""Small modules tested directly: the training loop's stop signals and a run's provenance."""

import signal
import subprocess
from pathlib import Path

import ml_collections
import pytest

from flax_resnets.runs import provenance
from flax_resnets.training.signals import StopSignals


def test_a_first_signal_is_a_request_a_second_goes_to_the_handler_it_replaced(capsys):
    seen = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: seen.append(number))
    try:
        with StopSignals() as stop:
            assert not stop.requested(step=1)
            signal.raise_signal(signal.SIGTERM)  # in this thread, so handled before the next line
            assert stop.requested(step=2) and stop.exit_status() == 128 + signal.SIGTERM
            said = capsys.readouterr().err.splitlines()  # at once, while the call is in flight
            assert said == [
                "SIGTERM: stopping after the call in flight (an epoch that has just ended is validated "
                "first); its checkpoint is saved, then the run exits. Ctrl-C again stops at once."
            ]
            signal.raise_signal(signal.SIGINT)  # the command's own handler, e.g. exit at once
            assert seen == [signal.SIGINT]
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # both restored
        signal.raise_signal(signal.SIGINT)
        assert seen == [signal.SIGINT, signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_second_signal_without_a_callable_handler_to_go_to_raises_keyboard_interrupt():
    with StopSignals() as stop, pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)
        assert stop.requested(step=1)
        signal.raise_signal(signal.SIGTERM)  # SIGTERM's previous handler is the default action


def test_the_commit_is_the_checkouts_marked_dirty_or_the_one_the_source_travelled_with(monkeypatch):
    monkeypatch.delenv("FLAX_RESNETS_COMMIT", raising=False)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    if not head:
        pytest.skip("not a git checkout (a source copy without .git)")
    assert provenance.source_commit() in (head, head + "-dirty")
    monkeypatch.setenv("FLAX_RESNETS_COMMIT", "0123abc")
    assert provenance.source_commit() == "0123abc"


def test_run_json_records_every_member_seed_the_data_and_the_training_time():
    class Data:
        def summary(self):
            return {"class_names": ["a", "b"], "train": 8}

    config = ml_collections.ConfigDict(
        dict(model="resnet8", dtype="float32", seed=5, num_seeds=3, dataset="image_folder", data_dir="/d")
    )
    history = [{"seconds": 1.5}, {"seconds": 2.0}]
    record = provenance.run_record(config, Data(), history)
    assert record["seeds"] == [5, 6, 7] and record["epochs"] == 2 and record["wall_seconds"] == 3.5
    data = {"dataset": "image_folder", "data_dir": "/d", "class_names": ["a", "b"], "train": 8}
    assert record["data"] == data
    assert record["device"] and record["versions"]["jax"]
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():  # the processor as the OS names it (where it says)
        named = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if ":" in line]
        assert record["processor"] in named
    assert record["processor"]
