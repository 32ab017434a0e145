"""Two choices that make training faster on a CPU: a compile option and a convolution batch size.

By default XLA:CPU (jaxlib 0.10) hands convolutions to the YNNPACK library. Timed alternately in
one process on a 2-core machine, XLA's own (Eigen) convolutions, with YNNPACK kept for
reductions only, trained resnet20 and resnet18 1.1-1.4x faster at batch 16 and 128 (issue 5 has
the measurements). The option is passed per compilation, so it touches neither the process's
``XLA_FLAGS`` nor other programs; it is left out off CPU, where a user's ``XLA_FLAGS`` already
set it, and where the running jaxlib does not know it.
"""

from __future__ import annotations

import functools
import os

import jax

LIBRARY_FUSIONS_OPTION = "xla_cpu_experimental_ynn_fusion_type"
LIBRARY_FUSIONS = "LIBRARY_FUSION_TYPE_REDUCE"


@functools.cache
def compiler_options() -> dict[str, str]:
    """The options for ``jax.jit(..., compiler_options=...)`` on this process's backend."""
    if jax.default_backend() != "cpu" or LIBRARY_FUSIONS_OPTION in os.environ.get("XLA_FLAGS", ""):
        return {}
    options = {LIBRARY_FUSIONS_OPTION: LIBRARY_FUSIONS}
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(1.0).compile()
    except jax.errors.JaxRuntimeError:  # a jaxlib without the option (it is experimental)
        return {}
    return options


# XLA:CPU's convolutions, their weight gradients most, slow down as the batch grows: a batch of
# 128 convolved in micro-batches of 16 trained resnet20 1.16-1.23x and resnet18 1.06-1.08x faster.
CONVOLUTION_MICRO_BATCH = 16


def convolution_micro_batch() -> int | None:
    """The batch size to split convolutions into, on a single CPU device only: across several
    devices, a micro-batch would straddle their shards of the batch."""
    if jax.default_backend() == "cpu" and jax.device_count() == 1:
        return CONVOLUTION_MICRO_BATCH
    return None
