"""Residual networks and their plain twins (``shortcut="none"``), CIFAR-style: the ImageNet-depth ResNets
on 32x32 inputs as in the paper (3x3 stem, no max-pool, projection shortcuts), and He et al.'s CIFAR
ResNets (6n+2 layers, 16/32/64 channels, parameter-free shortcuts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from flax_resnets.models.layers import Layers, at_least_float32, global_average_pool

ShortcutKind = Literal["projection", "pad", "none"]


class ProjectionShortcut(nnx.Module):
    """1x1 strided convolution and BatchNorm (He et al.'s option B)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, *, layers: Layers, rngs: nnx.Rngs):
        self.conv = layers.conv(in_channels, out_channels, 1, stride=stride, rngs=rngs)
        self.bn = layers.batch_norm(out_channels, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        return self.bn(self.conv(x), use_running_average=not train)


class PadShortcut(nnx.Module):
    """Parameter-free shortcut: take every stride-th pixel and zero-pad the new channels (option A)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        del train  # No parameters, no statistics.
        x = x[:, :: self.stride, :: self.stride, :]
        before = self.extra_channels // 2
        return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (before, self.extra_channels - before)))


def make_shortcut(
    kind: ShortcutKind, in_channels: int, out_channels: int, stride: int, *, layers: Layers, rngs: nnx.Rngs
) -> nnx.Module | None:
    """The shortcut module for a block, or None for the identity (or for no shortcut at all)."""
    if kind == "none" or (stride == 1 and in_channels == out_channels):
        return None
    if kind == "projection":
        return ProjectionShortcut(in_channels, out_channels, stride, layers=layers, rngs=rngs)
    if kind == "pad":
        return PadShortcut(in_channels, out_channels, stride)
    raise ValueError(f"Unknown shortcut kind {kind!r}; expected 'projection', 'pad' or 'none'.")


class BasicBlock(nnx.Module):
    """Two 3x3 convolutions (ResNet-18/34 and the He et al. CIFAR ResNets)."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int,
        *,
        shortcut: ShortcutKind,
        layers: Layers,
        rngs: nnx.Rngs,
    ):
        out_channels = width * self.expansion
        self.conv1 = layers.conv(in_channels, width, 3, stride=stride, rngs=rngs)
        self.bn1 = layers.batch_norm(width, rngs=rngs)
        self.conv2 = layers.conv(width, out_channels, 3, rngs=rngs)
        self.bn2 = layers.batch_norm(out_channels, rngs=rngs)
        self.residual = shortcut != "none"
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride, layers=layers, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        y = nnx.relu(self.bn1(self.conv1(x), use_running_average=not train))
        y = self.bn2(self.conv2(y), use_running_average=not train)
        return nnx.relu(add_shortcut(self, x, y, train=train))


class Bottleneck(nnx.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4 (ResNet-50/101/152; stride on the 3x3, as torchvision)."""

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int,
        *,
        shortcut: ShortcutKind,
        layers: Layers,
        rngs: nnx.Rngs,
    ):
        out_channels = width * self.expansion
        self.conv1 = layers.conv(in_channels, width, 1, rngs=rngs)
        self.bn1 = layers.batch_norm(width, rngs=rngs)
        self.conv2 = layers.conv(width, width, 3, stride=stride, rngs=rngs)
        self.bn2 = layers.batch_norm(width, rngs=rngs)
        self.conv3 = layers.conv(width, out_channels, 1, rngs=rngs)
        self.bn3 = layers.batch_norm(out_channels, rngs=rngs)
        self.residual = shortcut != "none"
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride, layers=layers, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        y = nnx.relu(self.bn1(self.conv1(x), use_running_average=not train))
        y = nnx.relu(self.bn2(self.conv2(y), use_running_average=not train))
        y = self.bn3(self.conv3(y), use_running_average=not train)
        return nnx.relu(add_shortcut(self, x, y, train=train))


def add_shortcut(block: BasicBlock | Bottleneck, x: jax.Array, y: jax.Array, *, train: bool) -> jax.Array:
    """y + shortcut(x) for a residual block, y alone for a plain one."""
    if not block.residual:
        return y
    return y + (x if block.shortcut is None else block.shortcut(x, train=train))


class ResNet(nnx.Module):
    """3x3 stem, stages of blocks (the first block of every stage after the first halves the
    resolution), global average pooling and a linear classifier."""

    def __init__(
        self,
        *,
        block: type[BasicBlock] | type[Bottleneck],
        stage_sizes: Sequence[int],
        stage_widths: Sequence[int],
        shortcut: ShortcutKind,
        num_classes: int,
        input_channels: int,
        layers: Layers,
        rngs: nnx.Rngs,
    ):
        stem_width = stage_widths[0]
        self.stem_conv = layers.conv(input_channels, stem_width, 3, rngs=rngs)
        self.stem_bn = layers.batch_norm(stem_width, rngs=rngs)
        blocks = []
        channels = stem_width
        for stage, (num_blocks, width) in enumerate(zip(stage_sizes, stage_widths, strict=True)):
            for index in range(num_blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(block(channels, width, stride, shortcut=shortcut, layers=layers, rngs=rngs))
                channels = width * block.expansion
        self.blocks = nnx.List(blocks)
        self.head = layers.linear(channels, num_classes, rngs=rngs)

    def __call__(
        self, x: jax.Array, *, train: bool = False, dropout_key: jax.Array | None = None
    ) -> jax.Array:
        del dropout_key  # no dropout in residual networks
        x = nnx.relu(self.stem_bn(self.stem_conv(x), use_running_average=not train))
        for block in self.blocks:
            x = block(x, train=train)
        return at_least_float32(self.head(global_average_pool(x)))
