"""flax-resnets: train a model of the paper, or evaluate a run's checkpoint.

python main.py --config=configs/cifar10_resnet18.py --workdir=runs/c10_r18
python main.py --config=configs/cifar10_resnet18.py --workdir=runs/c10_r18 --mode=eval
"""

import os
import signal
import sys


def interrupted_while_loading(number: int, frame: object) -> None:
    """Ctrl-C before the command has installed its own handler: out at once, as it does."""
    os.write(sys.stderr.fileno(), b"Interrupted.\n")
    os._exit(130)


if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # started in the background: left ignored
    signal.signal(signal.SIGINT, interrupted_while_loading)

try:
    from flax_resnets.commands import train
except ImportError as error:  # flax_resnets.runtime.compat: a flax that does not work with this jax
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    train.main(sys.argv[1:], program=sys.argv[0])
