"""VGG19 as the paper's code ran it on 32x32 images: sixteen 3x3 convolutions with ReLU (``vgg19``) or
BatchNorm and ReLU (``vgg19_bn``), 2x2 max-pooling after each of five stages, a dropout(0.5)
512-512 classifier, He fan-out convolutions: 20,554,826 parameters at 10 classes (20,612,004 with
BatchNorm at 100). ``vgg8``: one convolution per stage and a 64-64 classifier, for tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from flax_resnets.models.layers import Dropout, Layers, at_least_float32, max_pool

VGG19_STAGES = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))
VGG8_STAGES = ((16,), (32,), (64,), (64,), (64,))
DROPOUT_RATE = 0.5
HIDDEN_FEATURES = 512


class ConvReLU(nnx.Module):
    """A 3x3 convolution with bias, optionally BatchNorm, then ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, *, batch_norm: bool, layers: Layers, rngs: nnx.Rngs
    ):
        self.conv = layers.conv(in_channels, out_channels, 3, use_bias=True, rngs=rngs)
        self.bn = layers.batch_norm(out_channels, rngs=rngs) if batch_norm else None

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x, use_running_average=not train)
        return nnx.relu(x)


class VGG(nnx.Module):
    def __init__(
        self,
        *,
        batch_norm: bool,
        stages: Sequence[Sequence[int]] = VGG19_STAGES,
        hidden_features: int = HIDDEN_FEATURES,
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
                stage.append(ConvReLU(channels, width, batch_norm=batch_norm, layers=layers, rngs=rngs))
                channels = width
            stage_layers.append(nnx.List(stage))
        self.stages = nnx.List(stage_layers)
        self.dropout1 = Dropout(DROPOUT_RATE, stream=0)
        self.fc1 = layers.linear(channels, hidden_features, rngs=rngs)
        self.dropout2 = Dropout(DROPOUT_RATE, stream=1)
        self.fc2 = layers.linear(hidden_features, hidden_features, rngs=rngs)
        self.head = layers.linear(hidden_features, num_classes, rngs=rngs)

    def __call__(
        self, x: jax.Array, *, train: bool = False, dropout_key: jax.Array | None = None
    ) -> jax.Array:
        for stage in self.stages:
            for layer in stage:
                x = layer(x, train=train)
            x = max_pool(x, 2, 2)
        x = x.reshape(x.shape[0], -1)  # 1x1 maps: the order of the flattened features is the channels'
        x = nnx.relu(self.fc1(self.dropout1(x, train=train, key=dropout_key)))
        x = nnx.relu(self.fc2(self.dropout2(x, train=train, key=dropout_key)))
        return at_least_float32(self.head(x))
