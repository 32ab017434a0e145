"""Using what a run trained: its model in Python (``load_run``), and exported for other frameworks."""

from flax_resnets.inference.trained import TrainedModel, load_run

__all__ = ["TrainedModel", "load_run"]
