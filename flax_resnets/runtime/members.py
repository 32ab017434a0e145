"""Several seeds of one run as one compiled program (``config.num_seeds``).

A run of S > 1 members holds every array of its training state with a leading member axis:
member k is the run with seed ``config.seed + k`` (its own initialisation, batch order,
augmentation, BatchNorm statistics and best checkpoint), and the compiled steps are the one-seed
steps under ``jax.vmap``. Where launches dominate (small batches on an accelerator), S members
cost about what one does. A one-seed run is a run of one member: its arrays have the member axis
too (of size 1), so one code path serves one seed and many.
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
    """One tree of the members' trees, stacked on a new leading axis (by ``xp.stack``: ``numpy``
    on the host)."""
    return jax.tree.map(lambda *leaves: xp.stack(leaves), *trees)


def join_shapes(tree: Any, num_seeds: int) -> Any:
    """``join`` of ``num_seeds`` trees shaped like ``tree``, as shapes (``jax.ShapeDtypeStruct``)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct((num_seeds, *x.shape), x.dtype), tree)


def split(tree: Any, num_seeds: int) -> list[Any]:
    """Each member's tree: ``join`` undone."""
    return [jax.tree.map(lambda leaf, k=k: leaf[k], tree) for k in range(num_seeds)]


def over_members(function: Callable, num_seeds: int, in_axes: Any = 0, *, unroll: bool = False) -> Callable:
    """``function`` of one member, applied to every member (``in_axes`` as ``jax.vmap``'s: None for
    an argument all members share): vectorized by ``jax.vmap``, or, with ``unroll``, called once per
    member inside the same program (XLA:CPU runs vmap's grouped convolutions slower than one
    convolution per member)."""
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
