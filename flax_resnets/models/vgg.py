"""VGG19 with BatchNorm (Simonyan & Zisserman, 2015), CIFAR-style.

Sixteen 3x3 convolutions, each followed by BatchNorm and ReLU, in five stages closed by 2x2
max-pooling (32x32 -> 1x1), then a single linear classifier on the 512 features, as in the
common CIFAR adaptations. About 20.0M parameters at 10 classes, the 20M of Table 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from flax_resnets.models.layers import Layers, at_least_float32, global_average_pool, max_pool

VGG19_STAGES = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))


class ConvBNReLU(nnx.Module):
    def __init__(self, in_channels: int, out_channels: int, *, layers: Layers, rngs: nnx.Rngs):
        self.conv = layers.conv(in_channels, out_channels, 3, use_bias=True, rngs=rngs)
        self.bn = layers.batch_norm(out_channels, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        return nnx.relu(self.bn(self.conv(x), use_running_average=not train))


class VGG(nnx.Module):
    def __init__(
        self,
        *,
        stages: Sequence[Sequence[int]] = VGG19_STAGES,
        num_classes: int,
        input_channels: int,
        layers: Layers,
        rngs: nnx.Rngs,
    ):
        stage_layers = []
        channels = input_channels
        for widths in stages:
            stage = []
            for width in widths:
                stage.append(ConvBNReLU(channels, width, layers=layers, rngs=rngs))
                channels = width
            stage_layers.append(nnx.List(stage))
        self.stages = nnx.List(stage_layers)
        self.head = layers.linear(channels, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        for stage in self.stages:
            for layer in stage:
                x = layer(x, train=train)
            x = max_pool(x, 2, 2)
        return at_least_float32(self.head(global_average_pool(x)))
