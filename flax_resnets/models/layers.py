"""Layer factories shared by every model family, so that all of them initialise and normalise alike.

Conventions follow the PyTorch reference implementations the paper used: convolutions use He
(fan-out) normal initialisation, linear layers PyTorch's default uniform initialisation, and
BatchNorm a running-average momentum of 0.1 (Flax's ``momentum=0.9``) with ``eps=1e-5``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from flax_resnets import xla_cpu

Dtype = Any

# PyTorch's BatchNorm updates running = (1 - 0.1) * running + 0.1 * batch; Flax keeps the first factor.
BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5

conv_kernel_init = jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal")
linear_kernel_init = jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def conv_general_dilated(
    lhs: jax.Array, rhs: jax.Array, window_strides: Any, padding: Any, **kwargs: Any
) -> jax.Array:
    """``lax.conv_general_dilated`` for NHWC inputs and HWIO kernels, in micro-batches where
    ``xla_cpu.convolution_micro_batch`` asks for them (the results are the same)."""
    micro_batch = xla_cpu.convolution_micro_batch()
    if micro_batch is None or lhs.shape[0] <= micro_batch:
        return convolve(lhs, rhs, window_strides, padding, **kwargs)
    return jnp.concatenate(
        [
            convolve(lhs[start : start + micro_batch], rhs, window_strides, padding, **kwargs)
            for start in range(0, lhs.shape[0], micro_batch)
        ]
    )


def convolve(lhs: jax.Array, rhs: jax.Array, window_strides: Any, padding: Any, **kwargs: Any) -> jax.Array:
    """``lax.conv_general_dilated``, except on a map smaller than the kernel (VGG19's last stage:
    2x2 under 3x3), which is one matrix product of its padded patches. XLA:CPU's convolution
    takes ~50x longer there; a small matmul is fast anywhere."""
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


def conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    use_bias: bool = False,
    dtype: Dtype = jnp.float32,
    rngs: nnx.Rngs,
) -> nnx.Conv:
    """A square convolution with 'same'-style padding of kernel_size // 2 (PyTorch's usual choice)."""
    pad = kernel_size // 2
    return nnx.Conv(
        in_channels,
        out_channels,
        kernel_size=(kernel_size, kernel_size),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        use_bias=use_bias,
        kernel_init=conv_kernel_init,
        conv_general_dilated=conv_general_dilated,
        dtype=dtype,
        param_dtype=jnp.float32,
        rngs=rngs,
    )


def batch_norm(num_features: int, *, dtype: Dtype = jnp.float32, rngs: nnx.Rngs) -> nnx.BatchNorm:
    """BatchNorm with PyTorch's defaults; the caller chooses batch or running statistics per call."""
    return nnx.BatchNorm(
        num_features,
        use_running_average=None,
        momentum=BATCH_NORM_MOMENTUM,
        epsilon=BATCH_NORM_EPSILON,
        dtype=dtype,
        param_dtype=jnp.float32,
        rngs=rngs,
    )


def linear(in_features: int, out_features: int, *, dtype: Dtype = jnp.float32, rngs: nnx.Rngs) -> nnx.Linear:
    """A dense layer initialised like PyTorch's ``nn.Linear``."""
    bound = in_features**-0.5
    return nnx.Linear(
        in_features,
        out_features,
        kernel_init=linear_kernel_init,
        bias_init=lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, -bound, bound),
        dtype=dtype,
        param_dtype=jnp.float32,
        rngs=rngs,
    )


def max_pool(x: jax.Array, window: int, stride: int) -> jax.Array:
    """Max pooling over NHWC spatial axes without padding."""
    return nnx.max_pool(x, window_shape=(window, window), strides=(stride, stride), padding="VALID")


def global_average_pool(x: jax.Array) -> jax.Array:
    """(N, H, W, C) -> (N, C)."""
    return jnp.mean(x, axis=(1, 2))
