"""The paper's training recipe (section 3.3), shared by every config file.

The fields and their defaults live in ``flax_resnets.config.default_config``, so that the
benchmark and the PyTorch parity check read the same recipe as training. Override any field on
the command line: ``--config.learning_rate=0.01``.
"""

import ml_collections

from flax_resnets.config import default_config


def get_config(dataset: str = "cifar10", model: str = "resnet18") -> ml_collections.ConfigDict:
    return default_config(dataset=dataset, model=model)
