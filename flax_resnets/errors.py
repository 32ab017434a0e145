"""The one exception type for bad user input (its message names the problem and the fix), the
one way to warn of something worked around, and the libraries' notices kept off the console."""

import contextlib
import logging
import os
import sys
from collections.abc import Iterator


class InputError(ValueError):
    """A configuration or data problem the user can fix; the CLI prints it and exits with status 2."""


def shown(path: str | os.PathLike) -> str:
    """A path as a message can print it on one line: as the OS gives it, or, where it holds a
    newline or bytes that are not text (a name that is not UTF-8), with those escaped."""
    text = os.fsdecode(path)
    return text if text.isprintable() else repr(text)[1:-1]


def warn(message: str) -> None:
    """One ``warning:`` line on stderr: something was worked around, the run goes on."""
    print(f"warning: {message}.", file=sys.stderr, flush=True)


@contextlib.contextmanager
def only_logged_errors() -> Iterator[None]:
    """Inside, log records below ERROR are dropped (TFDS's and orbax's notices are not the user's)."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
