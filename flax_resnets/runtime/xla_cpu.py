"""What makes training faster on a CPU, each measured on 2 x86 cores (``results/checks/xla_cpu_settings/``):
XLA's own convolutions rather than YNNPACK's (1.04-1.36x, per compilation, unless ``XLA_FLAGS`` says
otherwise), steps and members unrolled (resnet20: 398 images/s against 18.9), maps smaller than their
kernel convolved as one matrix product (VGG19: 61 images/s against 15).
"""

from __future__ import annotations

import functools
import os
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


def small_map_convolution(
    lhs: jax.Array, rhs: jax.Array, window_strides: Any, padding: Any, **kwargs: Any
) -> jax.Array:
    """``lax.conv_general_dilated`` (NHWC, HWIO), but a map smaller than the kernel (VGG19's 2x2 under
    3x3) as one matrix product of its padded patches: ~50x faster on XLA:CPU."""
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
