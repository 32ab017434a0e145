"""A trained run in Python: ``load_run(workdir)`` gives its model and what using it needs.

>>> run = flax_resnets.load_run("runs/c10_r18")            # the best checkpoint, evaluation mode
>>> probabilities = run.predict(images)   # image files, PIL images or uint8 (N, H, W, C) arrays
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

from flax_resnets.checks import validate_config
from flax_resnets.data.arrays import IMAGE_SIZE
from flax_resnets.data.images import model_inputs, model_pixels, normalization_constants
from flax_resnets.errors import InputError
from flax_resnets.runs.workdir import read_run
from flax_resnets.runtime import members
from flax_resnets.training import steps
from flax_resnets.training.checkpoints import Checkpoints
from flax_resnets.training.evaluate import choose_steps, restore_members
from flax_resnets.training.programs import jit_logits


@dataclasses.dataclass
class TrainedModel:
    """One trained model of a run, in evaluation mode, with what its inputs must be."""

    model: nnx.Module
    name: str  # the zoo model, e.g. "resnet18"
    class_names: tuple[str, ...]
    channels: int  # of the images the model takes (32x32)
    mean: tuple[float, ...]  # normalisation per channel, on pixels in [0, 1]
    std: tuple[float, ...]
    seed: int
    checkpoint_step: int
    config: ml_collections.ConfigDict

    image_size = IMAGE_SIZE

    def preprocess(self, images: Any) -> np.ndarray:
        """Images (files, PIL images, uint8 (H, W), (H, W, C) or (N, H, W, C) arrays, or a list) as the
        model's float32 (N, 32, 32, channels) input; anything else is a ``ValueError``."""
        pixels = np.stack([model_pixels(image, self.channels) for image in image_list(images)])
        return model_inputs(pixels, (self.mean, self.std))

    def logits(self, images: Any, *, batch_size: int = 256) -> np.ndarray:
        """The model's logits for the images, (N, classes), in batches of ``batch_size``."""
        if type(batch_size) is not int or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, not {batch_size!r}.")
        inputs = self.preprocess(images)
        graphdef, params, batch_stats = nnx.split(self.model, nnx.Param, nnx.BatchStat)
        forward, state = jit_logits(graphdef), {"params": params, "batch_stats": batch_stats}
        batches = [inputs[start : start + batch_size] for start in range(0, len(inputs), batch_size)]
        return np.concatenate([np.asarray(forward(state, batch)) for batch in batches])

    def predict(self, images: Any, *, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, classes), softmax of ``logits``."""
        return np.asarray(jax.nn.softmax(self.logits(images, batch_size=batch_size), axis=-1))


def load_run(workdir: str | Path, checkpoint: str | int = "best", seed: int | None = None) -> TrainedModel:
    """The model of a run in ``workdir``: its best checkpoint by validation accuracy ("best"), the
    latest ("latest") or a step. A run of several seeds needs ``seed``: which member."""
    run = read_run(Path(workdir).expanduser())  # "~/run" as the command line takes it
    workdir, config = run.folder, ml_collections.ConfigDict(run.config)
    validate_config(config)
    seeds = members.member_seeds(config.seed, config.num_seeds)
    if seed is None and len(seeds) > 1:
        raise InputError(
            f"{workdir} holds a run of {len(seeds)} seeds ({', '.join(map(str, seeds))}): choose one with "
            "seed=K (--seed=K)."
        )
    if seed is not None and seed not in seeds:
        raise InputError(f"{workdir} has no seed {seed!r}; its seeds are {', '.join(map(str, seeds))}.")
    member = seeds.index(seed) if seed is not None else 0
    class_names, channels = run.classes()
    statistics = run.pixel_statistics() if config.normalization == "data" else ((), ())
    mean, std = normalization_constants(config.normalization, channels, *statistics)
    with Checkpoints(
        workdir / "checkpoints", keep=config.keep_checkpoints, num_seeds=config.num_seeds, read_only=True
    ) as checkpoints:
        which = str(checkpoint)
        member_steps = choose_steps(checkpoints, which, config.num_seeds)
        graphdef, abstract = steps.abstract_model_state(
            config, num_classes=len(class_names), input_channels=channels
        )
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract)
        state = members.split(restore_members(checkpoints, member_steps, abstract), config.num_seeds)[member]
    model = nnx.merge(graphdef, state["params"], state["batch_stats"])
    model.eval()
    return TrainedModel(
        model=model,
        name=config.model,
        class_names=class_names,
        channels=channels,
        mean=mean,
        std=std,
        seed=seeds[member],
        checkpoint_step=member_steps[member],
        config=config,
    )


def image_list(images: Any) -> list[Any]:
    """The images of a batch (an (N, H, W, C) array, a list) or the one image given; none: ``ValueError``."""
    if hasattr(images, "ndim") and images.ndim == 4:
        items = list(np.asarray(images))
    elif isinstance(images, (list, tuple)):
        items = list(images)
    else:
        items = [images]
    if not items:
        raise InputError("expected at least one image; got an empty batch.")
    return items
