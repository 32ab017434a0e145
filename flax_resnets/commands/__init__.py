"""The command-line tools, above the library: ``python -m flax_resnets COMMAND`` runs one."""

from flax_resnets.runtime.compat import require_working_flax

require_working_flax()  # one sentence, not flax's traceback, where flax does not work with this jax
