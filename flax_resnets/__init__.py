"""flax-resnets: the paper's model zoo, input pipelines and trainer in JAX/Flax."""

from flax_resnets.runtime.compat import require_working_flax

require_working_flax()
