"""Choosing the input pipeline: tf.data on the host, or the data resident on the devices.

A feed yields, per step, the inputs of the compiled step (global arrays already on the mesh),
and turns them into the model's batch inside the compiled step (``train_batch``,
``eval_batch``). Both feeds give the same batches of examples for the same seed.
"""

from __future__ import annotations

import ml_collections
from jax.sharding import Mesh

from flax_resnets.data import Dataset
from flax_resnets.device_pipeline import DeviceFeed
from flax_resnets.input_pipeline import TfDataFeed

Feed = TfDataFeed | DeviceFeed
PIPELINES = {"tfdata": TfDataFeed, "device": DeviceFeed}


def make_feed(
    config: ml_collections.ConfigDict, dataset: Dataset, mesh: Mesh, *, eval_batch_size: int
) -> Feed:
    return PIPELINES[config.input_pipeline](
        dataset,
        mesh,
        batch_size=config.batch_size,
        eval_batch_size=eval_batch_size,
        seed=config.seed,
        augment=config.augment,
    )
