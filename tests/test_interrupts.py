"""Ctrl-C and SIGTERM (``flax_resnets.interrupts``): at once outside training, once files are
whole; a request a training loop answers with a checkpoint inside it. The whole programs under
these signals: tests/test_faults.py."""

import signal
import subprocess
import sys

import pytest
from run_helpers import REPO

from flax_resnets.files import atomic_write
from flax_resnets.interrupts import INTERRUPTED, StopRequests, WritesInProgress, exit_when_files_are_whole


def test_a_first_signal_is_a_request_a_second_goes_to_the_handler_it_replaced(capsys):
    seen = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: seen.append(number))
    try:
        with StopRequests() as stop:
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


# Ctrl-C (as in a terminal) raised the moment JAX starts to load, under an entry point.
CTRL_C_AT_JAX = """
import runpy, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)

class CtrlCAtJax:
    def find_spec(self, name, path=None, target=None):
        if name == "jax":
            signal.raise_signal(signal.SIGINT)

sys.meta_path.insert(0, CtrlCAtJax())
sys.argv = sys.argv[1:]  # main.py ... or flax_resnets train ...
if sys.argv[0] == "main.py":
    runpy.run_path("main.py", run_name="__main__")
else:
    runpy.run_module("flax_resnets", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(
    "entry", [["main.py"], ["flax_resnets", "train"]], ids=["main.py", "-m flax_resnets"]
)
def test_ctrl_c_while_the_libraries_load_is_one_line(entry):
    """The entry point installs the handler before anything heavy loads: Ctrl-C while JAX loads once
    became an ImportError or a traceback."""
    args = [*entry, "--config=configs/quickstart.py", "--workdir=/tmp/never"]
    result = subprocess.run(
        [sys.executable, "-c", CTRL_C_AT_JAX, *args], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 130, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [INTERRUPTED] and result.stdout == ""
