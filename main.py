"""flax-resnets: train a model of the paper, or evaluate a run's checkpoint.

python main.py --config=configs/cifar10_resnet18.py --workdir=runs/c10_r18
python main.py --config=configs/cifar10_resnet18.py --workdir=runs/c10_r18 --mode=eval
"""

import sys

from flax_resnets import interrupts

interrupts.install("train")  # before the libraries load: Ctrl-C while they do is one line too

try:
    from flax_resnets.cli import run_command
    from flax_resnets.commands import train
except ImportError as error:  # flax_resnets.runtime.compat: a flax that does not work with this jax
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    sys.exit(run_command(lambda argv: train.main(argv, program=sys.argv[0]), sys.argv[1:]))
