"""Stopping a run cleanly on a signal: a checkpoint first, then exit."""

from __future__ import annotations

import signal
import sys
import threading

import jax


class StopSignals:
    """SIGTERM (a scheduler's preemption, a sweep's time budget) and SIGINT (Ctrl-C) become a
    request that the loop answers after the call in flight: save a checkpoint, then stop. A
    second signal stops at once: by the handler this replaced (a command's own), or a
    KeyboardInterrupt. On several hosts, JAX's preemption sync point makes all of them
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
            previous = self.previous.get(number)
            if not callable(previous):
                raise KeyboardInterrupt
            previous(number, frame)
            return
        self.received = number
        name = "Ctrl-C" if number == signal.SIGINT else signal.Signals(number).name
        print(
            f"{name}: stopping after the call in flight (an epoch that has just ended is validated "
            "first); its checkpoint is saved, then the run exits. Ctrl-C again stops at once.",
            file=sys.stderr,
            flush=True,
        )

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
