"""The paper's model zoo in Flax NNX: ``create_model(name, ...)`` builds any of ``MODELS``.

>>> model = create_model("resnet18", num_classes=10, input_channels=3, seed=0)
>>> logits = model(images, train=True, dropout_key=key)   # images: (N, 32, 32, C) float, NHWC

``registry`` describes each model and builds it; ``resnet``, ``vgg``, ``alexnet`` are the
families; ``layers`` holds the conventions every model shares (initialisation, BatchNorm).
"""

from flax_resnets.runtime.compat import require_working_flax

require_working_flax()  # one sentence, not flax's traceback, where flax does not work with this jax
from flax_resnets.models.layers import INITS
from flax_resnets.models.registry import (
    MODELS,
    RESIDUAL_TWINS,
    VGGS,
    ResNetSpec,
    count_parameters,
    create_model,
    layer_init,
    named_arrays,
    require_init,
    require_models,
)

__all__ = [
    "INITS",
    "MODELS",
    "RESIDUAL_TWINS",
    "VGGS",
    "ResNetSpec",
    "count_parameters",
    "create_model",
    "layer_init",
    "named_arrays",
    "require_init",
    "require_models",
]
