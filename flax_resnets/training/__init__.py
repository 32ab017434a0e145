"""Training: the train state and compiled steps, the loop, evaluation and checkpoints."""

from flax_resnets.runtime.compat import require_working_flax

require_working_flax()  # one sentence, not flax's traceback, where flax does not work with this jax
