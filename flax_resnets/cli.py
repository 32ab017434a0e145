"""The project's command lines, one dialect for all (``main.py`` included): argparse flags, a config
file loaded with its own checks (``load_config_file``), and ``--config.FIELD=VALUE`` overrides
anywhere among the flags (``parse_command``, for ``checks.with_overrides``). Every mistake is one
line on stderr, exit status 2 (``refuse``, ``CommandParser``, ``run_command``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import ml_collections

from flax_resnets.errors import InputError, shown
from flax_resnets.files import require_writable

EXIT_REFUSED = 2
EXIT_FAILED = 1  # the system failed the command: a full disk, a file-size limit
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a command whose reader closed (SIGPIPE)


def refuse(message: str) -> NoReturn:
    """The one way a command refuses its input: one line on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_REFUSED)


class CommandParser(argparse.ArgumentParser):
    """argparse for the project's commands: a bad argument is one ``error:`` line and exit 2,
    instead of argparse's usage block."""

    def error(self, message: str) -> NoReturn:
        refuse(f"{message}; see {self.prog} --help.")


def user_path(text: str) -> Path:
    """argparse type of every path flag: the path as a user typed it, ``~`` expanded (a shell leaves
    it alone after ``=``); an empty value (an unset variable's) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty value (an unset variable?)")
    return Path(text).expanduser()


def output_file(text: str) -> Path:
    """argparse type of a file a command writes: ``user_path``, refused at once (before any work)
    where it cannot be written (``files.require_writable``)."""
    return writable(user_path(text), folder=False)


def output_folder(text: str) -> Path:
    """argparse type of a folder a command writes into: as ``output_file``, for a folder."""
    return writable(user_path(text), folder=True)


def writable(path: Path, *, folder: bool) -> Path:
    try:
        require_writable(path, folder=folder)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return path


def positive_int(text: str) -> int:
    """argparse type: a positive integer."""
    if not (text.strip().isdecimal() and int(text) > 0):
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def positive_ints(text: str) -> list[int]:
    """argparse type: comma-separated positive integers, e.g. ``16,128``."""
    if not all(value.strip().isdecimal() and int(value) > 0 for value in text.split(",")):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return [int(value) for value in text.split(",")]


def command_parser(name: str, doc: str, prog: str | None = None) -> CommandParser:
    """The parser of ``python -m flax_resnets NAME`` (or ``prog``), described by its module's
    docstring ``doc`` whole, as plain text (its double backticks dropped)."""
    return CommandParser(
        prog=prog or f"python -m flax_resnets {name}",
        description=doc.replace("``", "").strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def run_command(main: Callable[[list[str]], int | None], argv: list[str]) -> int:
    """Run a command's ``main(argv)``: bad input is refused in one line (exit status 2), a failure of
    the system (a full disk, a file-size limit) is one line naming the file (exit status 1)."""
    try:
        return main(argv) or 0
    except InputError as error:
        refuse(str(error))
    except BrokenPipeError:  # its reader has gone (``| head``): stop quietly, as the shell's tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return EXIT_BROKEN_PIPE
    except OSError as error:
        print(f"error: {system_failure(error)}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except (RuntimeError, AssertionError):  # JAX's, where the backend it was told to use fails
        reason = backend_failure()
        if reason is None:
            raise
        refuse(
            f"JAX_PLATFORMS={os.environ['JAX_PLATFORMS']} names a backend this machine cannot start{reason}: "
            "unset it to use the machine's devices, or install JAX for that device (README: GPUs and TPUs)."
        )


def backend_failure() -> str | None:
    """Why JAX_PLATFORMS's backend fails to start (" (JAX's reason)" or ""), or None where it does."""
    if "jax" not in sys.modules or not os.environ.get("JAX_PLATFORMS"):
        return None
    try:
        sys.modules["jax"].devices()
    except (RuntimeError, AssertionError) as error:
        reason = str(error).split(" (set JAX_PLATFORMS")[0]
        return f" ({first_line(reason)})" if reason else ""
    return None


def system_failure(error: OSError) -> str:
    """``error`` in one line: the file it concerns and the system's reason."""
    where = f"{shown(error.filename)}: " if error.filename is not None else ""
    return f"{where}{error.strerror or first_line(error)}."


def load_config_file(spec: str) -> Any:
    """The ConfigDict of ``--config=PATH[:ARG]``, or a refusal that says what is wrong with it."""
    whole = ":" not in spec or Path(spec).expanduser().is_file()  # a folder's name may hold a colon
    path_text, _, argument = (spec, "", "") if whole else spec.rpartition(":")
    path = Path(path_text).expanduser()
    example = "e.g. --config=configs/quickstart.py (the files in configs/)"
    if not path.is_file():
        refuse(f"--config={spec}: there is no such file; pass a config file, {example}.")
    module_spec = importlib.util.spec_from_file_location(f"config_{path.stem}", path)
    if path.suffix != ".py" or module_spec is None:
        refuse(f"--config={spec} is not a config file (a Python file with get_config()); {example}.")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as error:
        refuse(f"--config={spec} is not Python (line {error.lineno}: {error.msg}); {example}.")
    except SystemExit:  # it parses a command line when loaded: a program such as main.py
        refuse(f"--config={spec} is a program, not a config file; {example}.")
    except Exception as error:  # the file's own code failed: name the first line of its error
        refuse(
            f"--config={spec} could not be loaded ({type(error).__name__}: {first_line(error)}); {example}."
        )
    if not callable(getattr(module, "get_config", None)):
        refuse(f"--config={spec} defines no get_config(), so it is not a config file; {example}.")
    try:
        config = module.get_config(argument) if argument else module.get_config()
    except Exception as error:
        refuse(f"--config={spec}: get_config() failed ({type(error).__name__}: {first_line(error)}).")
    if not isinstance(config, ml_collections.ConfigDict):
        refuse(f"--config={spec}: get_config() gave a {type(config).__name__}, not a ConfigDict; {example}.")
    return config


def first_line(error: BaseException) -> str:
    """The first line of an error's message (a KeyError's quotes removed)."""
    text = str(error).strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text.splitlines()[0] if text else type(error).__name__


def parse_command(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """A command's arguments, and its ``--config.FIELD=VALUE`` overrides (anywhere among them, or after
    ``--``) for ``checks.with_overrides``: how every command with a config reads its command line."""
    overrides = [arg for arg in argv if arg.startswith("--config.")]
    malformed = [arg for arg in overrides if "=" not in arg]
    if malformed:
        raise InputError(f"{malformed[0]}: write an override as {malformed[0]}=VALUE, in one word.")
    return parser.parse_args([arg for arg in argv if arg not in overrides and arg != "--"]), overrides
