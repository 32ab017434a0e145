"""``python -m flax_resnets COMMAND [ARGS]``: the project's tools (``COMMAND --help`` describes each).

    train           train or evaluate a model (what main.py runs)
    table1          the paper's Table 1 with our kept runs beside it
    sweep           train a list of Table 1 cells within a time budget
    benchmark       training images/s per model and batch size (PyTorch beside it)
    parity          the models and the optimizer against their PyTorch twins
    reports         one row per finished run, or redraw a run's plots
    data            export a dataset as one array file (training then needs no TensorFlow)
    models          parameters and GFLOPs of every model
    figures         the degradation experiment and loss landscapes, as pictures and numbers
    predict         classify image files with a trained run
    export          a trained run's model for PyTorch, or as named arrays
    config          every field of a config (a file's, with overrides), its value and meaning
    compile         a run's programs compiled for TPU slices without a TPU: memory and FLOPs per chip
"""

from __future__ import annotations

import importlib
import sys

from flax_resnets import interrupts
from flax_resnets.cli import refuse, run_command
from flax_resnets.runtime.compat import IncompatibleVersionsError

COMMANDS = (
    *("train", "table1", "sweep", "benchmark", "parity", "reports"),
    *("data", "models", "figures", "predict", "export", "config", "compile"),
)


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.replace("``", "").strip())
        return 0
    if not argv:  # a command is missing: the list of them, as an error
        print(__doc__.replace("``", "").strip(), file=sys.stderr)
        return 2
    name, *rest = argv
    if name not in COMMANDS:
        refuse(f"unknown command {name!r}; choose one of: {', '.join(COMMANDS)}.")
    try:
        command = importlib.import_module(f"flax_resnets.commands.{name}")
    except IncompatibleVersionsError as error:
        refuse(str(error))
    return run_command(command.main, rest)


if __name__ == "__main__":
    interrupts.install(sys.argv[1] if len(sys.argv) > 1 else "")  # before the command's libraries load
    sys.exit(main(sys.argv[1:]))
