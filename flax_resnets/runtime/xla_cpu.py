"""What makes training faster on a CPU: a compile option, loops unrolled, and the convolution to
build models with (``runtime.tuning`` applies them on a CPU only).

By default XLA:CPU (jaxlib 0.10) hands convolutions to the YNNPACK library. Timed alternately in
one process on a 2-core CPU, XLA's own (Eigen) convolutions, with YNNPACK kept for reductions
only, trained resnet20 and resnet18 1.1-1.4x faster at batch 16 and 128. The option is passed
per compilation, so it touches neither the process's ``XLA_FLAGS`` nor other programs; it is left
out where a user's ``XLA_FLAGS`` already set it, and where the running jaxlib does not know it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

LIBRARY_FUSIONS_OPTION = "xla_cpu_experimental_ynn_fusion_type"
LIBRARY_FUSIONS = "LIBRARY_FUSION_TYPE_REDUCE"


@functools.cache
def compiler_options() -> dict[str, str]:
    """The options for ``jax.jit(..., compiler_options=...)`` on a CPU."""
    if LIBRARY_FUSIONS_OPTION in os.environ.get("XLA_FLAGS", ""):
        return {}
    options = {LIBRARY_FUSIONS_OPTION: LIBRARY_FUSIONS}
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(1.0).compile()
    except jax.errors.JaxRuntimeError:  # a jaxlib without the option (it is experimental)
        return {}
    return options


# The steps of a call and the members of a run are unrolled on a CPU (``tuning.Tuning.unroll``):
# XLA:CPU runs convolutions inside a loop several times slower, and vmap's grouped convolutions
# ~1.8x slower than one per member (resnet8, batch 16, 4 members: 570 images/s unrolled, 308
# under vmap, 569 for one member).


# XLA:CPU's convolutions, their weight gradients most, slow down as the batch grows: a batch of
# 128 convolved in micro-batches of 16 trained resnet20 1.16-1.23x and resnet18 1.06-1.08x faster.
CONVOLUTION_MICRO_BATCH = 16


@functools.cache
def convolution() -> Callable[..., jax.Array]:
    """The convolution to build models with on a CPU (``create_model(convolution=)``): maps smaller
    than their kernel become one matrix product (``small_map_convolution``), and on a single CPU
    device, batches over 16 are convolved in micro-batches of 16 (across several devices a
    micro-batch would straddle their shards of the batch). The results are the same as
    ``lax.conv_general_dilated``'s; only the speed differs.
    """
    if jax.device_count() == 1:
        return functools.partial(micro_batched_convolution, micro_batch=CONVOLUTION_MICRO_BATCH)
    return small_map_convolution


def micro_batched_convolution(
    lhs: jax.Array, rhs: jax.Array, window_strides: Any, padding: Any, *, micro_batch: int, **kwargs: Any
) -> jax.Array:
    """``small_map_convolution`` of NHWC inputs and HWIO kernels, ``micro_batch`` examples at a time."""
    if lhs.shape[0] <= micro_batch:
        return small_map_convolution(lhs, rhs, window_strides, padding, **kwargs)
    return jnp.concatenate(
        [
            small_map_convolution(lhs[start : start + micro_batch], rhs, window_strides, padding, **kwargs)
            for start in range(0, lhs.shape[0], micro_batch)
        ]
    )


def small_map_convolution(
    lhs: jax.Array, rhs: jax.Array, window_strides: Any, padding: Any, **kwargs: Any
) -> jax.Array:
    """``lax.conv_general_dilated`` (NHWC, HWIO), except on a map smaller than the kernel (VGG19's
    last stage: 2x2 under 3x3), which is one matrix product of its padded patches: XLA:CPU's
    convolution takes ~50x longer there."""
    plain = (
        isinstance(padding, str)
        or tuple(window_strides) != (1, 1)
        or any(d not in (None, 1, (1, 1)) for d in (kwargs.get("lhs_dilation"), kwargs.get("rhs_dilation")))
        or kwargs.get("feature_group_count", 1) != 1
    )
    kernel_height, kernel_width, channels, features = rhs.shape
    if plain or (lhs.shape[1] >= kernel_height and lhs.shape[2] >= kernel_width):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs)
    padded = jnp.pad(lhs, ((0, 0), *padding, (0, 0)))
    height, width = padded.shape[1] - kernel_height + 1, padded.shape[2] - kernel_width + 1
    patches = jnp.concatenate(
        [padded[:, i : i + height, j : j + width] for i in range(kernel_height) for j in range(kernel_width)],
        axis=-1,
    )
    out = jnp.dot(
        patches.reshape(-1, kernel_height * kernel_width * channels),
        rhs.reshape(-1, features),
        precision=kwargs.get("precision"),
        preferred_element_type=kwargs.get("preferred_element_type"),
    )
    return out.reshape(lhs.shape[0], height, width, features)
