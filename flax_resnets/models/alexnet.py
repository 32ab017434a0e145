"""AlexNet as the paper's code ran it on 32x32 images: five 3x3 convolutions (64, 192, 384, 256, 256
channels) with ReLU, 2x2 max-pooling after the first, second and fifth (to 4x4), an adaptive
average pool *up* to 6x6 (PyTorch's, bins overlapping), flattened in PyTorch's order, and a
dropout(0.5) 9216-4096-4096 classifier. 56,826,698 parameters at 10 classes.
"""

from __future__ import annotations

import jax
from flax import nnx

from flax_resnets.models.layers import Dropout, Layers, adaptive_average_pool, at_least_float32, max_pool

FEATURE_MAP_SIZE = 6
DROPOUT_RATE = 0.5


class AlexNet(nnx.Module):
    def __init__(self, *, num_classes: int, input_channels: int, layers: Layers, rngs: nnx.Rngs):
        self.conv1 = layers.conv(input_channels, 64, 3, use_bias=True, rngs=rngs)
        self.conv2 = layers.conv(64, 192, 3, use_bias=True, rngs=rngs)
        self.conv3 = layers.conv(192, 384, 3, use_bias=True, rngs=rngs)
        self.conv4 = layers.conv(384, 256, 3, use_bias=True, rngs=rngs)
        self.conv5 = layers.conv(256, 256, 3, use_bias=True, rngs=rngs)
        self.dropout1 = Dropout(DROPOUT_RATE, stream=0)
        self.fc1 = layers.linear(256 * FEATURE_MAP_SIZE**2, 4096, rngs=rngs)
        self.dropout2 = Dropout(DROPOUT_RATE, stream=1)
        self.fc2 = layers.linear(4096, 4096, rngs=rngs)
        self.head = layers.linear(4096, num_classes, rngs=rngs)

    def __call__(
        self, x: jax.Array, *, train: bool = False, dropout_key: jax.Array | None = None
    ) -> jax.Array:
        x = max_pool(nnx.relu(self.conv1(x)), 2, 2)
        x = max_pool(nnx.relu(self.conv2(x)), 2, 2)
        x = nnx.relu(self.conv3(x))
        x = nnx.relu(self.conv4(x))
        x = max_pool(nnx.relu(self.conv5(x)), 2, 2)
        x = adaptive_average_pool(x, FEATURE_MAP_SIZE)
        x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)  # (C, H, W) order, as PyTorch flattens
        x = nnx.relu(self.fc1(self.dropout1(x, train=train, key=dropout_key)))
        x = nnx.relu(self.fc2(self.dropout2(x, train=train, key=dropout_key)))
        return at_least_float32(self.head(x))
