"""How the compiled programs are built for the platform they run on, chosen here alone for the platform
of the devices they are built for: on a CPU ``xla_cpu``'s settings, which train faster; elsewhere
plain JAX (a TPU program compiled ahead of time on a CPU host takes no CPU setting).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
from jax import lax

from flax_resnets.runtime import xla_cpu


@dataclasses.dataclass(frozen=True)
class Tuning:
    """``convolution``: what models convolve with; ``unroll``: steps and members unrolled instead of
    ``lax.scan`` and ``jax.vmap``; ``compiler_options``: for every ``jit``."""

    convolution: Callable[..., jax.Array] = lax.conv_general_dilated
    unroll: bool = False
    compiler_options: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def jit(self, function: Callable, **kwargs: Any) -> Any:
        """``jax.jit`` with this tuning's compiler options."""
        return jax.jit(function, compiler_options=dict(self.compiler_options), **kwargs)


PLAIN = Tuning()


@functools.cache
def for_backend(platform: str | None = None) -> Tuning:
    """The tuning of ``platform`` ("cpu", "gpu", "tpu"; default: this process's backend):
    ``xla_cpu``'s on a CPU, plain JAX elsewhere."""
    if (platform or jax.default_backend()) != "cpu":
        return PLAIN
    return Tuning(
        convolution=xla_cpu.small_map_convolution, unroll=True, compiler_options=xla_cpu.compiler_options()
    )
