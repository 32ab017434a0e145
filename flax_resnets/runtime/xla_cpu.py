"""What makes training faster on a CPU: a compile option, loops unrolled, and the convolution to
build models with (``runtime.tuning`` applies them on a CPU only; ``training.steps`` builds with
them). Each was measured against the trainer without it on a 2-core x86 CPU, jaxlib 0.10.2
(``results/checks/xla_cpu_settings/``; timings there move ~15% between runs):

- the option: XLA's own (Eigen) convolutions, YNNPACK kept for reductions: resnet20 and resnet18
  trained 1.04-1.36x faster at batch 16 and 128 than with YNNPACK's convolutions;
- steps and members unrolled: resnet20 at batch 16, 4 steps a call, 398 images/s (1 seed) and 370
  (2 seeds) against 18.9 and 13.8 under ``lax.scan`` and ``jax.vmap``;
- maps smaller than their kernel as one matrix product: VGG19 at batch 16, 61 images/s against 15.

Dropped, for it no longer paid: convolving batches over 16 in micro-batches of 16 (as fast or
slower than one convolution at batch 128, and 3x the compile time).

The option is passed per compilation, so it touches neither the process's ``XLA_FLAGS`` nor
other programs; it is left out where a user's ``XLA_FLAGS`` already set it, and where the
running jaxlib does not know it.
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
