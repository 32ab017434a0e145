"""Progress for a command's long parts, one look for all: every bar on a terminal; into a log file,
the bars asked for (a line now and then) and, for the other long parts, a line at their start and end.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

LOGGED_AFTER_SECONDS = 2.0  # a part that ends sooner says nothing in a log


class Bar(tqdm):
    """tqdm's bar; where it is not drawn, a ``logged`` part that lasts ``LOGGED_AFTER_SECONDS`` says
    so in a log: what and how many once it has taken that long, and how long it took at its end."""

    def __init__(self, *args, logged: bool = False, **kwargs):
        self.logged, self.said, self.began = logged, False, time.perf_counter()
        self.heading = f"{kwargs['desc']}: {kwargs['total'] or 'some'} {kwargs['unit']}(s)"
        super().__init__(*args, **kwargs)
        self.say_if_long()

    def say_if_long(self) -> None:
        if self.logged and not self.said and time.perf_counter() - self.began >= LOGGED_AFTER_SECONDS:
            self.said = True
            print(f"{self.heading} ...", file=sys.stderr, flush=True)

    def update(self, n: float = 1) -> bool | None:
        self.say_if_long()
        return super().update(n)

    def compiled(self, what: str, seconds: float) -> None:
        """``what`` was compiled in the ``seconds`` just spent: left out of the rate and the time
        left, and said above the bar (or in the log) where it took long."""
        if not self.disable:
            self.start_t, self.last_print_t = self.start_t + seconds, self.last_print_t + seconds
        if seconds >= LOGGED_AFTER_SECONDS:
            self.write(f"compiled {what} in {seconds:.1f} s", sys.stderr)

    def close(self) -> None:
        self.say_if_long()
        if self.said:
            print(f"{self.heading}: {time.perf_counter() - self.began:.1f} s", file=sys.stderr, flush=True)
        self.logged = self.said = False
        super().close()


def progress(
    total: int | None,
    description: str,
    unit: str,
    *,
    initial: int = 0,
    enabled: bool = True,
    in_logs: bool = False,
) -> Bar:
    """A bar of ``total`` ``unit``s; ``enabled``: this process shows progress (the main one);
    ``in_logs``: drawn even where stderr is not a terminal."""
    terminal = sys.stderr.isatty()
    drawn = enabled and (terminal or in_logs)
    shown = dict(disable=not drawn, logged=enabled and not drawn, dynamic_ncols=True, leave=in_logs)
    every = 1 if terminal else 30  # a log file gets a line of a drawn bar now and then
    return Bar(total=total, initial=initial, desc=description, unit=unit, mininterval=every, **shown)
