"""flax-resnets: the paper's model zoo, input pipelines and trainer in JAX/Flax; ``load_run(workdir)``
gives a trained run's model (``flax_resnets.inference``)."""

from typing import Any


def __getattr__(name: str) -> Any:
    """``load_run`` and ``TrainedModel``, imported when first asked for (not by every command)."""
    if name in ("load_run", "TrainedModel"):
        from flax_resnets import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'flax_resnets' has no attribute {name!r}")
