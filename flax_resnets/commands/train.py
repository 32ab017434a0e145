"""Train a model of the paper, or evaluate a run's checkpoint: what ``main.py`` runs.

    python main.py --config=configs/cifar10_resnet18.py --workdir=runs/c10_r18
    python main.py --config=configs/cifar10_resnet18.py --workdir=runs/c10_r18 --mode=eval

``python -m flax_resnets train ...`` is the same program, for an installed package.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from flax_resnets.cli import EXIT_FAILED, main_flags_parser, run_command
from flax_resnets.interrupts import EXIT_INTERRUPTED, INTERRUPTED

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and eval.json.", required=True)
flags.DEFINE_enum("mode", "train", ["train", "eval"], "train (resumes a run) or eval (tests a checkpoint).")
flags.DEFINE_string("checkpoint", "best", "For --mode=eval: best, latest or a step number.")


def train_or_evaluate(argv: list[str]) -> int:
    del argv
    if not FLAGS["verbosity"].present:  # the libraries' logs are for debugging: --verbosity=0 shows them
        logging.set_verbosity(logging.ERROR)
    # Imported here so that --help answers without loading JAX and TensorFlow.
    import jax

    from flax_resnets.errors import InputError
    from flax_resnets.runs.summary import result_line
    from flax_resnets.runs.workdir import config_dict, recorded_config
    from flax_resnets.training.checkpoints import CheckpointWriteError
    from flax_resnets.training.evaluate import evaluate_workdir
    from flax_resnets.training.loop import TrainingDivergedError, TrainingStoppedError, train_and_evaluate

    config = FLAGS.config if "config" in FLAGS else None
    try:
        if FLAGS.mode == "train":
            if config is None:
                raise InputError("--config is required to train: e.g. --config=configs/quickstart.py.")
            result = train_and_evaluate(config, FLAGS.workdir)
        else:
            result = evaluate_workdir(config, FLAGS.workdir, FLAGS.checkpoint)
    except (TrainingDivergedError, CheckpointWriteError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except TrainingStoppedError as error:
        print(str(error), file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:  # a second SIGTERM while training (``interrupts.StopRequests``)
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    if jax.process_index() == 0:
        run_config = config_dict(config) if config else recorded_config(FLAGS.workdir)
        print(result_line(result, run_config), flush=True)
    return 0


def main(argv: list[str], program: str = "python -m flax_resnets train") -> int:
    """``program ARGV``: absl parses the flags (``cli.main_flags_parser``), then train or evaluate."""
    app.run(
        lambda argv: run_command(train_or_evaluate, argv),
        argv=[program, *argv],
        flags_parser=main_flags_parser,
    )
    return 0  # not reached: app.run exits with train_or_evaluate's status
