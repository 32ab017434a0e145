"""The paper's models as PyTorch modules, written from its description and importing torch alone (the
file goes beside exported weights): ``build(architecture)``, NCHW inputs, the paper's initialisation;
dropout from torch's generator unless fed the masks to use (``feed_dropout_masks``, for parity).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

DROPOUT_RATE = 0.5  # both dropout layers of AlexNet's and VGG's classifiers
FEATURE_MAP_SIZE = 6  # AlexNet's adaptive average pool: 4x4 -> 6x6
# (stream, shape) -> the mask of kept units: dropout layer ``stream`` of a model, on ``shape``.
MaskSource = Callable[[int, tuple[int, ...]], torch.Tensor]


class ProjectionShortcut(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class Block(nn.Module):
    """A basic block (two 3x3 convolutions) or a bottleneck (1x1, strided 3x3, 1x1 x4)."""

    def __init__(self, in_channels: int, width: int, stride: int, shortcut: str, bottleneck: bool):
        super().__init__()
        out_channels = width * (4 if bottleneck else 1)
        if bottleneck:
            shapes = [(in_channels, width, 1, 1), (width, width, 3, stride), (width, out_channels, 1, 1)]
        else:
            shapes = [(in_channels, width, 3, stride), (width, out_channels, 3, 1)]
        for index, (i, o, k, s) in enumerate(shapes, start=1):
            setattr(self, f"conv{index}", nn.Conv2d(i, o, k, s, k // 2, bias=False))
            setattr(self, f"bn{index}", nn.BatchNorm2d(o))
        self.depth = len(shapes)
        same_shape = stride == 1 and in_channels == out_channels
        # "none": a plain network's block, no shortcut at all, whatever the shapes.
        self.shortcut_kind = "identity" if shortcut != "none" and same_shape else shortcut
        self.stride, self.extra = stride, out_channels - in_channels
        if self.shortcut_kind == "projection":
            self.shortcut = ProjectionShortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for index in range(1, self.depth + 1):
            y = getattr(self, f"bn{index}")(getattr(self, f"conv{index}")(y))
            if index < self.depth:
                y = torch.relu(y)
        if self.shortcut_kind == "projection":
            y = y + self.shortcut(x)
        elif self.shortcut_kind == "pad":
            before = self.extra // 2
            y = y + nn.functional.pad(
                x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, before, self.extra - before)
            )
        elif self.shortcut_kind == "identity":
            y = y + x
        return torch.relu(y)


class ResNet(nn.Module):
    """A 3x3 stem, stages of blocks, global average pooling and a linear head: kuangliu's ResNets,
    He et al.'s CIFAR ResNets (``shortcut="pad"``) and plain twins (``"none"``)."""

    def __init__(
        self,
        *,
        block: str,
        stage_sizes: Sequence[int],
        stage_widths: Sequence[int],
        shortcut: str,
        input_channels: int,
        num_classes: int,
    ):
        super().__init__()
        widths, sizes = stage_widths, stage_sizes
        bottleneck = block == "bottleneck"
        self.stem_conv = nn.Conv2d(input_channels, widths[0], 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(widths[0])
        blocks, channels = [], widths[0]
        for stage, (count, width) in enumerate(zip(sizes, widths, strict=True)):
            for index in range(count):
                blocks.append(
                    Block(channels, width, 2 if stage > 0 and index == 0 else 1, shortcut, bottleneck)
                )
                channels = width * (4 if bottleneck else 1)
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem_bn(self.stem_conv(x)))
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(dim=(2, 3)))


class Dropout(nn.Module):
    """``nn.Dropout(rate)``, or with ``masks`` set, the mask ``masks(stream, shape)`` gives."""

    def __init__(self, rate: float, stream: int):
        super().__init__()
        self.rate, self.stream = rate, stream
        self.masks: MaskSource | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if self.masks is None:
            return nn.functional.dropout(x, self.rate, training=True)
        return x * self.masks(self.stream, tuple(x.shape)).to(x.dtype) / (1 - self.rate)


def feed_dropout_masks(model: nn.Module, masks: MaskSource | None) -> None:
    """Make every dropout layer of ``model`` take its masks from ``masks`` (None: torch's generator)."""
    for module in model.modules():
        if isinstance(module, Dropout):
            module.masks = masks


class Classifier(nn.Module):
    """dropout(0.5), linear, ReLU, dropout(0.5), linear, ReLU, linear: AlexNet's and VGG's head."""

    def __init__(self, in_features: int, hidden: int, num_classes: int):
        super().__init__()
        self.dropout1 = Dropout(DROPOUT_RATE, stream=0)
        self.fc1 = nn.Linear(in_features, hidden)
        self.dropout2 = Dropout(DROPOUT_RATE, stream=1)
        self.fc2 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(self.dropout1(x)))
        x = torch.relu(self.fc2(self.dropout2(x)))
        return self.head(x)


class ConvReLU(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return torch.relu(x if self.bn is None else self.bn(x))


class VGG(nn.Module):
    """A VGG without or with BatchNorm, its convolutions He fan-out normal with zero biases."""

    def __init__(
        self,
        *,
        stages: Sequence[Sequence[int]],
        hidden_features: int,
        batch_norm: bool,
        input_channels: int,
        num_classes: int,
    ):
        super().__init__()
        layers, channels = [], input_channels
        for widths in stages:
            stage = []
            for width in widths:
                stage.append(ConvReLU(channels, width, batch_norm))
                channels = width
            layers.append(nn.ModuleList(stage))
        self.stages = nn.ModuleList(layers)
        self.classifier = Classifier(channels, hidden_features, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            for layer in stage:
                x = layer(x)
            x = nn.functional.max_pool2d(x, 2)
        return self.classifier(x.flatten(1))


class AlexNet(nn.Module):
    def __init__(self, *, input_channels: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 192, 3, padding=1)
        self.conv3 = nn.Conv2d(192, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 256, 3, padding=1)
        self.conv5 = nn.Conv2d(256, 256, 3, padding=1)
        self.classifier = Classifier(256 * FEATURE_MAP_SIZE**2, 4096, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = nn.functional.max_pool2d
        x = pool(torch.relu(self.conv1(x)), 2)
        x = pool(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.conv3(x))
        x = torch.relu(self.conv4(x))
        x = pool(torch.relu(self.conv5(x)), 2)
        x = nn.functional.adaptive_avg_pool2d(x, FEATURE_MAP_SIZE)
        return self.classifier(x.flatten(1))


FAMILIES = {"alexnet": AlexNet, "vgg": VGG, "resnet": ResNet}


def build(architecture: dict[str, Any]) -> nn.Module:
    """The model an architecture description names, freshly initialised."""
    fields = dict(architecture)
    return FAMILIES[fields.pop("family")](**fields)
