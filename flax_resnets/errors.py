"""The one exception type for bad user input (its message names the problem and the fix), and
the one way to warn of something worked around."""

import sys


class InputError(ValueError):
    """A configuration or data problem the user can fix; the CLI prints it and exits with status 2."""


def warn(message: str) -> None:
    """One ``warning:`` line on stderr: something was worked around, the run goes on."""
    print(f"warning: {message}.", file=sys.stderr, flush=True)
