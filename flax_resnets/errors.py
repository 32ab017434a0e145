"""The one exception type for bad user input: its message names the problem and the fix."""


class InputError(ValueError):
    """A configuration or data problem the user can fix; the CLI prints it and exits with status 2."""
