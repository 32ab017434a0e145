"""The project's command lines: every mistake answered in one line on stderr, exit status 2.

``refuse`` is the one way any command refuses its input; ``CommandParser`` makes argparse's
errors go through it, and ``run_command`` turns an ``InputError`` raised anywhere below a
command into it.

For ``main.py``, absl parses the flags and ml_collections applies the config overrides; left
alone, a misspelled field, a missing config file or a file that is not a config each end in a
traceback of 30-50 lines.
Here the config file is loaded first with its own checks, the ``--config.FIELD`` names are
checked against it (the closest field names suggested), and any other parsing error is reduced
to its first line and the fix.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from absl import flags

from flax_resnets.errors import InputError, shown

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
    where it cannot be written: a folder in its place, a file among its folders, no permission."""
    path = user_path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder: name the file to write")
    require_creatable(path.absolute().parents)
    return path


def output_folder(text: str) -> Path:
    """argparse type of a folder a command writes into: as ``output_file``, for a folder."""
    path = user_path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file: name a folder to write into")
    require_creatable([path.absolute(), *path.absolute().parents])
    return path


def require_creatable(folders: Any) -> None:
    """The first of ``folders`` (a path's own, then its parents) that exists is a folder this
    process can write into."""
    existing = next(folder for folder in folders if folder.exists())
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{existing} is a file, not a folder to write into")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{existing} is not writable")


def positive_int(text: str) -> int:
    """argparse type: a positive integer."""
    values = _positive_ints(text, "a positive integer")
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return values[0]


def positive_ints(text: str) -> list[int]:
    """argparse type: comma-separated positive integers, e.g. ``16,128``."""
    return _positive_ints(text, "comma-separated positive integers")


def _positive_ints(text: str, expected: str) -> list[int]:
    try:
        values = [int(value) for value in text.split(",")]
    except ValueError:
        values = [0]
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return values


def command_parser(name: str, doc: str) -> CommandParser:
    """The parser of ``python -m flax_resnets NAME``, described by its module's docstring ``doc``
    whole, as plain text (its double backticks dropped)."""
    return CommandParser(
        prog=f"python -m flax_resnets {name}",
        description=doc.replace("``", "").strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def run_command(main: Callable[[list[str]], int | None], argv: list[str]) -> int:
    """Run a command's ``main(argv)``; bad input found on the way is refused in one line (exit
    status 2), and a failure of the system (a full disk, a file-size limit, a permission) is one
    line naming the file and the system's reason (exit status 1). Files are written whole
    (``files``), so what a failed command had written before stays as it was."""
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


def system_failure(error: OSError) -> str:
    """``error`` in one line: the file it concerns and the system's reason."""
    where = f"{shown(error.filename)}: " if error.filename is not None else ""
    return f"{where}{error.strerror or first_line(error)}."


def flag_value(argv: list[str], name: str) -> str | None:
    """The last value given to ``--name=VALUE`` or ``--name VALUE`` in ``argv``."""
    value = None
    for index, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and index + 1 < len(argv):
            value = argv[index + 1]
    return value


def load_config_file(spec: str) -> Any:
    """The ConfigDict of ``--config=PATH[:ARG]``, or a refusal that says what is wrong with it."""
    path_text, _, argument = spec.partition(":")
    path = Path(path_text)
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
    except flags.Error:  # it defines command-line flags: a program such as main.py
        refuse(f"--config={spec} is a program, not a config file; {example}.")
    except Exception as error:  # the file's own code failed: name the first line of its error
        refuse(
            f"--config={spec} could not be loaded ({type(error).__name__}: {first_line(error)}); {example}."
        )
    if not callable(getattr(module, "get_config", None)):
        refuse(f"--config={spec} defines no get_config(), so it is not a config file; {example}.")
    try:
        return module.get_config(argument) if argument else module.get_config()
    except Exception as error:
        refuse(f"--config={spec}: get_config() failed ({type(error).__name__}: {first_line(error)}).")


# Fields that earlier versions had, and why they are gone: a config or flag that sets one is refused
# saying so; a workdir's config.json that holds one is read without it.
RETIRED_FIELDS = {
    "input_pipeline": "every run keeps its data on the devices and makes its batches in the compiled step",
}


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` as (the command's own flags, its ``--config.FIELD=VALUE`` overrides), the two mixed
    in any order as users type them."""
    overrides = [arg for arg in argv if arg.startswith("--config.")]
    for arg in overrides:
        if "=" not in arg:
            raise InputError(f"{arg}: write an override as {arg}=VALUE, in one word.")
    return [arg for arg in argv if not arg.startswith("--config.")], overrides


def check_fields(config: Any, argv: list[str]) -> None:
    """Refuse ``--config.FIELD=...`` for a FIELD the config does not have, naming the closest ones."""
    for arg in argv:
        if not arg.startswith("--config."):
            continue
        field = arg[len("--config.") :].split("=", 1)[0]
        if field in RETIRED_FIELDS:
            refuse(f"--config.{field} is no longer needed: {RETIRED_FIELDS[field]}; leave it out.")
        if field.split(".")[0] not in config:
            close = difflib.get_close_matches(field, list(config.keys()), n=3, cutoff=0.6)
            hint = (
                f"did you mean {' or '.join(close)}?"
                if close
                else f"its fields are: {', '.join(config.keys())}."
            )
            refuse(f"--config.{field}: the config has no field {field!r}; {hint}")


def first_line(error: BaseException) -> str:
    """The first line of an error's message (a KeyError's quotes removed)."""
    text = str(error).strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text.splitlines()[0] if text else type(error).__name__


def without_flag(argv: list[str], name: str) -> list[str]:
    """``argv`` less every ``--name=VALUE`` and ``--name VALUE``."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == f"--{name}":
            skip = True
        elif not arg.startswith(f"--{name}="):
            kept.append(arg)
    return kept


TRAIN_FLAGS_MODULE = "flax_resnets.commands.train"  # where main.py's flags are defined


def print_main_help(program: str) -> NoReturn:
    """main.py's --help: how it is called and every flag a user types, exit status 0 (absl's own
    --help lists only the flags of main.py's module, which has none, and exits 1)."""
    lines = [
        f"usage: {program} --config=CONFIG_FILE --workdir=DIR [--mode=train|eval] "
        "[--checkpoint=best|latest|STEP] [--config.FIELD=VALUE ...]",
        "",
        (sys.modules[TRAIN_FLAGS_MODULE].__doc__ or "").strip(),
        "",
        "flags:",
        "  --config: a config file, e.g. configs/cifar10_resnet18.py (configs/<dataset>_<model>.py are",
        "    the paper's Table 1 cells); required to train, read from the workdir to evaluate.",
        "  --config.FIELD=VALUE: a field of the config changed, e.g. --config.num_seeds=3;",
        "    `python -m flax_resnets config CONFIG_FILE` lists every field, its value and meaning.",
    ]
    for flag in sorted(flags.FLAGS.get_flags_for_module(TRAIN_FLAGS_MODULE), key=lambda f: f.name):
        default = "" if flag.default is None else f" (default: {flag.default})"
        lines.append(f"  --{flag.name}: {flag.help}{default}")
    print("\n".join(lines))
    sys.exit(0)


def main_flags_parser(argv: list[str]) -> list[str]:
    """``app.run``'s flags parser for main.py: the config file is loaded once, here, and its fields
    checked; absl then parses the other flags and applies the ``--config.FIELD`` overrides."""
    from ml_collections import config_flags

    if any(arg in ("-h", "--help", "--helpshort") for arg in argv[1:]):
        print_main_help(argv[0])
    spec = flag_value(argv[1:], "config")
    if spec is not None:
        config = load_config_file(spec)
        check_fields(config, argv[1:])
        argv = without_flag(argv, "config")
        config_flags.DEFINE_config_dict("config", config, f"The config of {spec}.", sys_argv=argv)
    elif any(arg.startswith("--config.") for arg in argv[1:]):
        refuse("--config.FIELD flags change a config file: add one, e.g. --config=configs/quickstart.py.")
    try:
        remaining = flags.FLAGS(argv)
        flags.FLAGS.workdir = str(user_path(flags.FLAGS.workdir))
        return remaining
    except argparse.ArgumentTypeError as error:
        refuse(f"--workdir: {error}: pass the folder for the run, e.g. runs/qs.")
    except flags.IllegalFlagValueError as error:
        message = first_line(error)
        if "--workdir" in message:
            refuse("--workdir is required: the folder for the run's checkpoints and results, e.g. runs/qs.")
        refuse(f"{message.removeprefix('flag ')}: give a value of the field's type (python main.py --help).")
    except flags.Error as error:
        refuse(f"{first_line(error)}: see python main.py --help for the flags.")
    except Exception as error:  # ml_collections applying a --config.FIELD value
        refuse(f"{first_line(error)} (in the --config flags): `python -m flax_resnets config` lists fields.")
