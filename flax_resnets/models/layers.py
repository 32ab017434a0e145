"""How every model builds its layers: one ``Layers`` value carries the initialisation, the compute
dtype and the convolution, so that all families initialise, normalise and convolve alike.

Initialisations (``init``):

* ``"pytorch"`` (the default, the paper's): what the PyTorch CIFAR zoo the paper's parameter
  counts come from (kuangliu/pytorch-cifar) gets by never re-initialising: PyTorch's layer
  defaults. Convolution and linear weights ``kaiming_uniform(a=sqrt(5))``, i.e.
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)); their biases U(-1/sqrt(fan_in), 1/sqrt(fan_in));
  BatchNorm scale 1 and shift 0.
* ``"he"``: He et al.'s fan-out normal for convolutions (torchvision's ResNet choice), zero
  convolution biases, linear layers as PyTorch.

BatchNorm computes what PyTorch's ``BatchNorm2d`` computes: running averages with momentum 0.1
(Flax's ``momentum=0.9``), ``eps=1e-5``, and the running variance updated with the unbiased
batch variance while normalising with the biased one. The batch variance is the mean of squared
deviations from the batch mean (two passes, as PyTorch's kernels), never E[x^2] - E[x]^2: that
one-pass form loses float32 digits where a channel's mean is large beside its spread, so the same
global batch split over devices or hosts gave different variances (issue 24).

The convolution is ``lax.conv_general_dilated`` unless the caller passes another with the same
signature (the trainer passes ``xla_cpu.convolution()``, which is faster on a CPU).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

Dtype = Any
INITS = ("pytorch", "he")

# PyTorch's BatchNorm updates running = (1 - 0.1) * running + 0.1 * batch; Flax keeps the first factor.
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5

# PyTorch's default for conv and linear weights: kaiming_uniform(a=sqrt(5)), a bound of 1/sqrt(fan_in).
pytorch_kernel_init = jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
he_conv_kernel_init = jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def pytorch_bias_init(fan_in: int) -> Callable:
    """PyTorch's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in of the layer's weight."""
    bound = fan_in**-0.5
    return lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, -bound, bound)


class BatchNorm(nnx.BatchNorm):
    """``nnx.BatchNorm`` computing what PyTorch's does: in training, it normalises with the batch's
    biased variance and moves the running variance towards the unbiased one (n / (n - 1), n the
    values per channel). The difference matters where maps are small: VGG19's 1x1 stage at batch
    16 has n = 16, a 6.7% larger running variance."""

    def __call__(self, x: jax.Array, use_running_average: bool | None = None, **kwargs: Any) -> jax.Array:
        if use_running_average:
            return super().__call__(x, use_running_average=True)
        axes = tuple(range(x.ndim - 1))
        values = at_least_float32(x)
        mean = values.mean(axes)
        var = jnp.square(values - mean).mean(axes)
        count = x.size // x.shape[-1]
        unbiased = var * (count / max(count - 1, 1))
        self.mean[...] = lax.stop_gradient(self.momentum * self.mean[...] + (1 - self.momentum) * mean)
        self.var[...] = lax.stop_gradient(self.momentum * self.var[...] + (1 - self.momentum) * unbiased)
        scaled = lax.rsqrt(var + self.epsilon) * self.scale[...]
        return ((values - mean) * scaled + self.bias[...]).astype(self.dtype or x.dtype)


@dataclasses.dataclass(frozen=True)
class Layers:
    """The layer factory a model is built with: initialisation, compute dtype and convolution.

    Parameters are always float32; ``dtype`` is the compute dtype (bfloat16 for mixed precision).
    """

    init: str = "pytorch"
    dtype: Dtype = jnp.float32
    convolution: Callable[..., jax.Array] = lax.conv_general_dilated

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"Unknown init {self.init!r}; choose one of: {', '.join(INITS)}.")

    def conv(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        use_bias: bool = False,
        rngs: nnx.Rngs,
    ) -> nnx.Conv:
        """A square convolution padded by kernel_size // 2 on every side (PyTorch's usual choice)."""
        pad = kernel_size // 2
        fan_in = in_channels * kernel_size * kernel_size
        pytorch = self.init == "pytorch"
        return nnx.Conv(
            in_channels,
            out_channels,
            kernel_size=(kernel_size, kernel_size),
            strides=(stride, stride),
            padding=((pad, pad), (pad, pad)),
            use_bias=use_bias,
            kernel_init=pytorch_kernel_init if pytorch else he_conv_kernel_init,
            bias_init=pytorch_bias_init(fan_in) if pytorch else jax.nn.initializers.zeros,
            conv_general_dilated=self.convolution,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )

    def linear(self, in_features: int, out_features: int, *, rngs: nnx.Rngs) -> nnx.Linear:
        """A dense layer initialised like PyTorch's ``nn.Linear`` (under both inits)."""
        return nnx.Linear(
            in_features,
            out_features,
            kernel_init=pytorch_kernel_init,
            bias_init=pytorch_bias_init(in_features),
            dtype=self.dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )

    def batch_norm(self, num_features: int, *, rngs: nnx.Rngs) -> BatchNorm:
        """PyTorch's BatchNorm2d; the caller chooses batch or running statistics per call."""
        return BatchNorm(
            num_features,
            use_running_average=None,
            momentum=BATCH_NORM_MOMENTUM,
            epsilon=BATCH_NORM_EPSILON,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )


def at_least_float32(x: jax.Array) -> jax.Array:
    """``x`` in float32, or float64 if it is (logits and BatchNorm statistics are never bfloat16)."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def max_pool(x: jax.Array, window: int, stride: int) -> jax.Array:
    """Max pooling over NHWC spatial axes without padding."""
    return nnx.max_pool(x, window_shape=(window, window), strides=(stride, stride), padding="VALID")


def global_average_pool(x: jax.Array) -> jax.Array:
    """(N, H, W, C) -> (N, C)."""
    return jnp.mean(x, axis=(1, 2))
