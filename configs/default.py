"""The paper's training recipe, shared by every config file.

The fields and their defaults live in ``flax_resnets.config.default_config``, and how each
Table 1 cell differs from them in ``flax_resnets.config.TABLE1_CELLS``, so that the sweep, the
table and the PyTorch parity check read the same recipe as training. Override any field on the
command line: ``--config.learning_rate=0.01``.
"""

import ml_collections

from flax_resnets.config import cell_config, default_config

__all__ = ["cell_config", "get_config"]


def get_config(dataset: str = "cifar10", model: str = "resnet18") -> ml_collections.ConfigDict:
    return default_config(dataset=dataset, model=model)
