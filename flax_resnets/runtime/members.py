"""Several seeds of one run as one compiled program (``config.num_seeds``): every array of the state
has a leading member axis, member k the run of seed ``config.seed + k`` (its own initialisation,
order, augmentation, BatchNorm statistics and best checkpoint), the steps the one-seed steps under
``jax.vmap``. A one-seed run is a run of one member: one code path for one seed and many.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp


def member_seeds(seed: int, num_seeds: int) -> list[int]:
    return list(range(seed, seed + num_seeds))


def join(trees: Sequence[Any], xp: Any = jnp) -> Any:
    """One tree of the members' trees, stacked on a new leading axis (``xp.stack``: numpy on the host)."""
    return jax.tree.map(lambda *leaves: xp.stack(leaves), *trees)


def join_shapes(tree: Any, num_seeds: int) -> Any:
    """``join`` of ``num_seeds`` trees shaped like ``tree``, as shapes (``jax.ShapeDtypeStruct``)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct((num_seeds, *x.shape), x.dtype), tree)


def split(tree: Any, num_seeds: int) -> list[Any]:
    """Each member's tree: ``join`` undone."""
    return [jax.tree.map(lambda leaf, k=k: leaf[k], tree) for k in range(num_seeds)]


def over_members(function: Callable, num_seeds: int, in_axes: Any = 0, *, unroll: bool = False) -> Callable:
    """``function`` of one member applied to every member (``in_axes`` as ``jax.vmap``'s): by
    ``jax.vmap``, or with ``unroll`` once per member in the program (faster on XLA:CPU)."""
    if not unroll:
        return jax.vmap(function, in_axes=in_axes)

    def each_member(*args: Any) -> Any:
        axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        per_member = [
            split(arg, num_seeds) if axis == 0 else [arg] * num_seeds
            for arg, axis in zip(args, axes, strict=True)
        ]
        return join([function(*member_args) for member_args in zip(*per_member, strict=True)])

    return each_member


def mean_and_std(values: Sequence[float]) -> tuple[float, float | None]:
    """The members' mean and sample standard deviation (None for a single member)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None
