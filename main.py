"""flax-resnets: train a model of the paper, or evaluate a run's checkpoint.

python main.py --config=configs/cifar10_resnet18.py --workdir=runs/c10_r18
python main.py --config=configs/cifar10_resnet18.py --workdir=runs/c10_r18 --mode=eval
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

try:
    from flax_resnets.cli import main_flags_parser, refuse
except ImportError as error:  # flax_resnets.compat: a flax that does not work with this jax
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/cifar10_resnet18.py.")
flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and eval.json.", required=True)
flags.DEFINE_enum("mode", "train", ["train", "eval"], "train (resumes a run) or eval (tests a checkpoint).")
flags.DEFINE_string("checkpoint", "best", "For --mode=eval: best, latest or a step number.")


def main(argv: list[str]) -> int:
    del argv
    if not FLAGS["verbosity"].present:  # the libraries' logs are for debugging: --verbosity=0 shows them
        logging.set_verbosity(logging.ERROR)
    # Imported here so that --help answers without loading JAX and TensorFlow.
    import jax

    from flax_resnets.errors import InputError
    from flax_resnets.evaluate import evaluate_workdir
    from flax_resnets.train import TrainingDivergedError, TrainingStoppedError, train_and_evaluate

    try:
        if FLAGS.mode == "train":
            if FLAGS.config is None:
                raise InputError("--config is required to train: e.g. --config=configs/quickstart.py.")
            result = train_and_evaluate(FLAGS.config, FLAGS.workdir)
        else:
            result = evaluate_workdir(FLAGS.config, FLAGS.workdir, FLAGS.checkpoint)
    except InputError as error:
        refuse(str(error))
    except TrainingDivergedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except TrainingStoppedError as error:
        print(str(error), file=sys.stderr)
        return error.exit_status
    if jax.process_index() == 0:
        print(
            f"{result['model']} on {result['dataset']}: test accuracy {result['test_accuracy']:.2%}, "
            f"loss {result['test_loss']:.4f} over {result['num_examples']} images "
            f"(checkpoint at step {result['checkpoint_step']})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=main_flags_parser)
