"""Ctrl-C and SIGTERM (``flax_resnets.interrupts``): at once outside training, once files are
whole; a request a training loop answers with a checkpoint inside it; and how a file is written
whole. The whole programs under these signals: tests/test_faults.py (training) and
tests/test_command_faults.py (every command)."""

import json
import os
import signal

import pytest

from flax_resnets.files import atomic_write, write_json
from flax_resnets.interrupts import TRAINING_STOPS, StopRequests, WritesInProgress, exit_when_files_are_whole


def test_a_first_signal_is_a_request_a_second_goes_to_the_handler_it_replaced(capsys):
    seen = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: seen.append(number))
    try:
        with StopRequests() as stop:
            assert not stop.requested(step=1)
            signal.raise_signal(signal.SIGTERM)  # in this thread, so handled before the next line
            assert stop.requested(step=2) and stop.exit_status() == 128 + signal.SIGTERM
            said = capsys.readouterr().err.splitlines()  # at once, while the call is in flight
            assert said == [TRAINING_STOPS.format(signal="SIGTERM")]
            assert said[0].startswith("SIGTERM: stopping once the steps already sent to the device are done")
            signal.raise_signal(signal.SIGINT)  # the command's own handler, e.g. exit at once
            assert seen == [signal.SIGINT]
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # both restored
        signal.raise_signal(signal.SIGINT)
        assert seen == [signal.SIGINT, signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_second_signal_without_a_callable_handler_to_go_to_raises_keyboard_interrupt():
    with StopRequests() as stop, pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)
        assert stop.requested(step=1)
        signal.raise_signal(signal.SIGTERM)  # SIGTERM's previous handler is the default action


def test_an_exit_asked_for_while_a_file_is_written_waits_until_the_file_is_whole(tmp_path):
    """Ctrl-C's handler ends the process without Python's teardown: never between a file's write
    and its rename."""
    exits = []
    path = tmp_path / "eval.json"

    def write(file):
        exit_when_files_are_whole(lambda: exits.append(sorted(p.name for p in tmp_path.iterdir())))
        assert exits == []
        file.write("{}")

    try:
        atomic_write(path, write)
    finally:
        WritesInProgress.exit_when_whole = None
    assert exits == [["eval.json"]]
    exit_when_files_are_whole(lambda: exits.append("at once"))
    assert exits[-1] == "at once"


def test_a_file_that_holds_the_same_bytes_already_is_left_as_it_is(tmp_path):
    """An evaluation that finds what the run wrote (best.json, the plots) changes nothing on disk,
    its times included; other bytes replace the file whole."""
    path = tmp_path / "best.json"
    write_json(path, {"step": 3})
    before = path.stat()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns - 10**9))
    kept = path.stat()
    write_json(path, {"step": 3})
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)
    write_json(path, {"step": 4})
    assert path.stat().st_ino != kept.st_ino and json.loads(path.read_text()) == {"step": 4}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json"]
