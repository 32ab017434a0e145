"""AlexNet (Krizhevsky et al., 2012) adapted to 32x32 inputs.

Five convolutions with torchvision's widths (64, 192, 384, 256, 256) and the 4096-4096
classifier on a 256x6x6 feature map, like torchvision's model. Only the early stride and
pooling change so that a 32x32 image reaches 6x6: 3x3 stride-1 first convolution, 2x2 pooling
after the first two convolutions (32 -> 16 -> 8), and a 3x3 stride-1 pooling after the last
(8 -> 6). No BatchNorm, and no dropout (the paper trains without it). About 57.0M parameters
at 10 classes, the 56M of Table 1.
"""

from __future__ import annotations

import jax
from flax import nnx

from flax_resnets.models.layers import Layers, at_least_float32, max_pool

FEATURE_MAP_SIZE = 6


class AlexNet(nnx.Module):
    def __init__(self, *, num_classes: int, input_channels: int, layers: Layers, rngs: nnx.Rngs):
        self.conv1 = layers.conv(input_channels, 64, 3, use_bias=True, rngs=rngs)
        self.conv2 = layers.conv(64, 192, 5, use_bias=True, rngs=rngs)
        self.conv3 = layers.conv(192, 384, 3, use_bias=True, rngs=rngs)
        self.conv4 = layers.conv(384, 256, 3, use_bias=True, rngs=rngs)
        self.conv5 = layers.conv(256, 256, 3, use_bias=True, rngs=rngs)
        self.fc1 = layers.linear(256 * FEATURE_MAP_SIZE**2, 4096, rngs=rngs)
        self.fc2 = layers.linear(4096, 4096, rngs=rngs)
        self.head = layers.linear(4096, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train  # Same computation in training and evaluation: no BatchNorm, no dropout.
        x = max_pool(nnx.relu(self.conv1(x)), 2, 2)
        x = max_pool(nnx.relu(self.conv2(x)), 2, 2)
        x = nnx.relu(self.conv3(x))
        x = nnx.relu(self.conv4(x))
        x = max_pool(nnx.relu(self.conv5(x)), 3, 1)
        x = x.reshape(x.shape[0], -1)
        x = nnx.relu(self.fc1(x))
        x = nnx.relu(self.fc2(x))
        return at_least_float32(self.head(x))
