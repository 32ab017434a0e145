"""Ctrl-C and SIGTERM for the whole process, decided here alone (stdlib only: installed before anything
heavy loads): each ends a command at once once the file being written is whole (one line, exit 130
or 143, no temporary left); while a training loop runs, a first one is a request it answers by
saving a checkpoint and stopping (on several hosts at one step), a second goes on as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import NoReturn

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
RESUMING_COMMANDS = ("train", "sweep")  # the same command again goes on where they stopped


def last_line(number: int, command: str) -> str:
    """What a command ends with on Ctrl-C (SIGINT) or SIGTERM."""
    name = "Interrupted" if number == signal.SIGINT else "Terminated"
    advice = "; run the same command to resume or evaluate" if command in RESUMING_COMMANDS else ""
    return f"{name}: files already written are whole{advice}."


class WritesInProgress:
    """How many files are being written now, and an exit waiting for them to be whole."""

    count = 0
    exit_when_whole: Callable[[], NoReturn] | None = None


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """Around the writing of a file: an exit asked for meanwhile waits until it is whole."""
    WritesInProgress.count += 1
    try:
        yield
    finally:
        WritesInProgress.count -= 1
    if WritesInProgress.count == 0 and WritesInProgress.exit_when_whole is not None:
        WritesInProgress.exit_when_whole()


def exit_when_files_are_whole(exit_now: Callable[[], NoReturn]) -> None:
    """``exit_now()`` at once, or, while a file is being written, as soon as it is whole: for a
    signal handler that ends the process without Python's teardown (``os._exit``)."""
    if WritesInProgress.count:
        WritesInProgress.exit_when_whole = exit_now
    else:
        exit_now()


def exit_interrupted(status: int, message: str) -> NoReturn:
    try:
        sys.stdout.flush()
    except RuntimeError:  # the signal came in the middle of a print: its line is lost, not the rest
        pass
    os.write(sys.stderr.fileno(), f"{message}\n".encode())
    os._exit(status)


# Set by a sweep for its cells: the pid of the process whose end must stop this one (SIGTERM: save
# a checkpoint and exit), so that no cell trains on, orphaned, once its sweep is gone.
STOP_WITH_PARENT = "FLAX_RESNETS_STOP_WITH_PARENT"
PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent ends (Linux)


def install(command: str) -> None:
    """At the entry point of ``command``: Ctrl-C and SIGTERM end it at once, once the files being
    written are whole; a sweep's cell gets SIGTERM when the sweep ends (``STOP_WITH_PARENT``)."""
    for number in (signal.SIGINT, signal.SIGTERM):
        if number == signal.SIGINT and signal.getsignal(number) is signal.SIG_IGN:
            continue  # started in the background by a shell: Ctrl-C is not its to answer
        end = functools.partial(exit_interrupted, 128 + number, last_line(number, command))
        signal.signal(number, lambda number, frame, end=end: exit_when_files_are_whole(end))
    if os.environ.get(STOP_WITH_PARENT):
        end_with_parent(int(os.environ[STOP_WITH_PARENT]), signal.SIGTERM)


def end_with_parent(parent: int, number: int) -> None:
    """This process gets signal ``number`` when its parent ``parent`` ends, kill -9 included (Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, number)
        if os.getppid() != parent:  # it ended before the line above took effect
            os.kill(os.getpid(), number)


TRAINING_STOPS = (
    "{signal}: stopping once the steps already sent to the device are done (an epoch that has just "
    "ended is validated first) and a checkpoint is saved: seconds on a fast device, a call or two of "
    "steps and a save on a slow one. Ctrl-C again stops at once."
)


class StopRequests:
    """While a training loop (or a sweep) runs: a first SIGTERM or SIGINT is a request the loop
    answers after the call in flight, a second goes to the handler this replaced. ``across_hosts``:
    every host stops at one step (JAX's preemption sync point)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, announcement: str = TRAINING_STOPS, *, across_hosts: bool = True) -> None:
        self.announcement = announcement
        self.across_hosts = across_hosts
        self.received: int | None = None
        self.previous: dict = {}

    def __enter__(self) -> StopRequests:
        if self.several_hosts() or threading.current_thread() is not threading.main_thread():
            return self
        self.previous = {number: signal.signal(number, self.handle) for number in self.SIGNALS}
        return self

    def several_hosts(self) -> bool:
        if not self.across_hosts:
            return False
        import jax  # loaded by then: only a training loop asks

        return jax.process_count() > 1

    def handle(self, number: int, frame: object) -> None:
        if self.received is not None:
            previous = self.previous.get(number)
            if not callable(previous):
                raise KeyboardInterrupt
            previous(number, frame)
            return
        self.received = number
        name = "Ctrl-C" if number == signal.SIGINT else signal.Signals(number).name
        print(self.announcement.format(signal=name), file=sys.stderr, flush=True)

    def requested(self, step: int) -> bool:
        if self.several_hosts():
            from jax.experimental import multihost_utils

            return multihost_utils.reached_preemption_sync_point(step)
        return self.received is not None

    def exit_status(self) -> int:
        return 128 + (self.received or signal.SIGTERM)

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)

