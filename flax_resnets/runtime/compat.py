"""The jax/flax pair must work together (flax 0.12.8 cannot be imported beside jax 0.11.2): where it
does not, one sentence naming the versions and the fix, not a traceback from inside flax.
"""

from __future__ import annotations

import sys
from importlib import metadata

# Pairs this project has been tested with (CPU in CI; an H100 machine with CUDA).
TESTED_PAIRS = (("0.10.2", "0.12.8"), ("0.11.2", "0.12.10"))


class IncompatibleVersionsError(ImportError):
    """The installed flax does not work with the installed jax."""


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def require_working_flax() -> None:
    """Import flax's NNX API, or raise one sentence naming the versions and the fix."""
    missing = [package for package in ("jax", "flax") if version(package) == "not installed"]
    if missing:
        raise IncompatibleVersionsError(
            f"{' and '.join(missing)} not installed in this Python ({sys.executable}): "
            'install the project with pip install -e ".[test]" (or activate its environment).'
        )
    try:
        import flax.nnx  # noqa: F401
    except Exception as error:  # ImportError, AttributeError: whatever the mismatch breaks
        tested = ", ".join(f"jax {jax} + flax {flax}" for jax, flax in TESTED_PAIRS)
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise IncompatibleVersionsError(
            f"flax {version('flax')} does not work with jax {version('jax')} ({reason}): install the "
            f"flax made for this jax (pip install --upgrade flax) or a tested pair ({tested})."
        ) from error
