"""Progress bars for a command's long parts, one look for all: every bar on a terminal; into a log
file only those asked for (a line now and then), so that a log is not filled with half-drawn bars.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress(
    total: int | None,
    description: str,
    unit: str,
    *,
    initial: int = 0,
    enabled: bool = True,
    in_logs: bool = False,
) -> tqdm:
    """A bar of ``total`` ``unit``s; ``enabled``: this process shows progress (the main one);
    ``in_logs``: drawn even where stderr is not a terminal."""
    terminal = sys.stderr.isatty()
    return tqdm(
        total=total,
        initial=initial,
        desc=description,
        unit=unit,
        disable=not enabled or not (terminal or in_logs),
        dynamic_ncols=True,
        leave=in_logs,
        mininterval=1 if terminal else 30,  # a log file gets a line now and then
    )
