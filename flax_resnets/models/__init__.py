"""The paper's model zoo in Flax NNX: ``create_model(name, ...)`` builds any of ``MODELS``
(``registry``), its families in ``resnet``, ``vgg`` and ``alexnet``, their layers in ``layers``."""

from flax_resnets.runtime.compat import require_working_flax

require_working_flax()  # one sentence, not flax's traceback, where flax does not work with this jax
from flax_resnets.models.layers import INITS as INITS
from flax_resnets.models.registry import MODELS as MODELS
from flax_resnets.models.registry import RESIDUAL_TWINS as RESIDUAL_TWINS
from flax_resnets.models.registry import VGGS as VGGS
from flax_resnets.models.registry import ResNetSpec as ResNetSpec
from flax_resnets.models.registry import abstract_model as abstract_model
from flax_resnets.models.registry import count_parameters as count_parameters
from flax_resnets.models.registry import create_model as create_model
from flax_resnets.models.registry import layer_init as layer_init
from flax_resnets.models.registry import named_arrays as named_arrays
from flax_resnets.models.registry import require_init as require_init
from flax_resnets.models.registry import require_models as require_models
