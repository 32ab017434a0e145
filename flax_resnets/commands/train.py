"""Train a model of the paper, or evaluate a run's checkpoint (``--mode=eval``): what ``main.py`` runs.

    python main.py --config=configs/cifar10_resnet18.py --workdir=runs/c10_r18 --config.num_seeds=3

Any ``--config.FIELD=VALUE`` changes a field (``python -m flax_resnets config`` lists them); the same
command again in the same workdir resumes the run.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from flax_resnets import checks
from flax_resnets.cli import EXIT_FAILED, command_parser, load_config_file, parse_command, refuse, user_path
from flax_resnets.interrupts import EXIT_INTERRUPTED, last_line


def main(argv: list[str], program: str | None = None) -> int:
    parser = command_parser("train", __doc__, program)
    add = parser.add_argument
    add("--config", help="a config file, e.g. configs/cifar10_resnet18.py (to evaluate: the workdir's)")
    add("--workdir", type=user_path, help="the run's folder: checkpoints, metrics, eval.json")
    add("--mode", choices=("train", "eval"), default="train", help="train (resumes) or eval")
    add("--checkpoint", default="best", help="for --mode=eval: best, latest or a step number")
    args, overrides = parse_command(parser, argv)
    if args.workdir is None:
        refuse("--workdir is required: the folder for the run's checkpoints and results, e.g. runs/qs.")
    if args.config is None and overrides:
        refuse("--config.FIELD flags change a config file: add one, e.g. --config=configs/quickstart.py.")
    if args.config is None and args.mode == "train":
        refuse("--config is required to train: e.g. --config=configs/quickstart.py.")
    config = checks.with_overrides(load_config_file(args.config), overrides) if args.config else None
    return train_or_evaluate(config, args.workdir, args.mode, args.checkpoint)


def train_or_evaluate(config: Any, workdir: Path, mode: str, checkpoint: str) -> int:
    """Train (or evaluate) in ``workdir``; the result's line, or the failure's, and the exit status."""
    # Imported here so that --help and refused flags answer without loading JAX and TensorFlow.
    import jax
    from absl import logging

    from flax_resnets.runs.summary import result_line
    from flax_resnets.runs.workdir import config_dict, read_run
    from flax_resnets.training.checkpoints import CheckpointWriteError
    from flax_resnets.training.evaluate import evaluate_workdir
    from flax_resnets.training.loop import TrainingDivergedError, TrainingStoppedError, train_and_evaluate

    logging.set_verbosity(logging.ERROR)  # the libraries' (orbax's) notices are for debugging
    try:
        if mode == "train":
            result = train_and_evaluate(config, workdir)
        else:
            result = evaluate_workdir(config, workdir, checkpoint)
    except (TrainingDivergedError, CheckpointWriteError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except TrainingStoppedError as error:
        print(str(error), file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:  # a second SIGTERM while training (``interrupts.StopRequests``)
        print(last_line(signal.SIGINT, "train"), file=sys.stderr)
        return EXIT_INTERRUPTED
    if jax.process_index() == 0:
        run_config = config_dict(config) if config else read_run(workdir).config
        print(result_line(result, run_config), flush=True)
    return 0
