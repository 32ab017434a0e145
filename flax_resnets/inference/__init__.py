"""Using what a run trained: its model in Python (``load_run``), exported for other frameworks, and
the loss landscape around it."""

from flax_resnets.runtime.compat import require_working_flax

require_working_flax()  # one sentence, not flax's traceback, where flax does not work with this jax
from flax_resnets.inference.trained import TrainedModel, load_run

__all__ = ["TrainedModel", "load_run"]
