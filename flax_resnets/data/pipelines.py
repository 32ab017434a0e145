"""Choosing a feed by the config's ``input_pipeline``."""

from __future__ import annotations

import ml_collections
from jax.sharding import Mesh

from flax_resnets.data.arrays import Dataset
from flax_resnets.data.device import DeviceFeed
from flax_resnets.data.feeds import Feed
from flax_resnets.data.tfdata import TfDataFeed

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
        num_seeds=config.num_seeds,
        pad_after_normalization=config.pad_after_normalization,
        augment_validation=config.augment_validation,
    )
