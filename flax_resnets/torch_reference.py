"""PyTorch twins of the zoo's models and training step, for ``benchmark --compare-torch`` only.

Same layers, widths, shortcuts and parameter counts as ``flax_resnets.models``; SGD with the
same momentum and weight decay. PyTorch is an optional extra, imported only here.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from torch import nn

from flax_resnets.models import MODELS
from flax_resnets.models.resnet import BasicBlock as FlaxBasicBlock
from flax_resnets.models.vgg import VGG19_STAGES


class Block(nn.Module):
    def __init__(self, in_channels: int, width: int, stride: int, shortcut: str, bottleneck: bool):
        super().__init__()
        out_channels = width * (4 if bottleneck else 1)
        if bottleneck:
            shapes = [(in_channels, width, 1, 1), (width, width, 3, stride), (width, out_channels, 1, 1)]
        else:
            shapes = [(in_channels, width, 3, stride), (width, out_channels, 3, 1)]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, k, s, k // 2, bias=False) for i, o, k, s in shapes)
        self.bns = nn.ModuleList(nn.BatchNorm2d(o) for _, o, _, _ in shapes)
        self.shortcut_kind = shortcut if (stride != 1 or in_channels != out_channels) else "identity"
        self.stride, self.extra = stride, out_channels - in_channels
        if self.shortcut_kind == "projection":
            self.projection = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for index, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            y = bn(conv(y))
            if index < len(self.convs) - 1:
                y = torch.relu(y)
        if self.shortcut_kind == "projection":
            y = y + self.projection(x)
        elif self.shortcut_kind == "pad":
            before = self.extra // 2
            y = y + nn.functional.pad(
                x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, before, self.extra - before)
            )
        elif self.shortcut_kind == "identity":
            y = y + x
        return torch.relu(y)


class ResNet(nn.Module):
    def __init__(self, spec: Any, input_channels: int, num_classes: int):
        super().__init__()
        kwargs = spec.keywords
        widths, sizes, shortcut = kwargs["stage_widths"], kwargs["stage_sizes"], kwargs["shortcut"]
        bottleneck = kwargs["block"] is not FlaxBasicBlock
        self.stem = nn.Sequential(
            nn.Conv2d(input_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        blocks, channels = [], widths[0]
        for stage, (count, width) in enumerate(zip(sizes, widths, strict=True)):
            for index in range(count):
                blocks.append(
                    Block(channels, width, 2 if stage > 0 and index == 0 else 1, shortcut, bottleneck)
                )
                channels = width * (4 if bottleneck else 1)
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


def vgg19(input_channels: int, num_classes: int) -> nn.Module:
    layers, channels = [], input_channels
    for stage in VGG19_STAGES:
        for width in stage:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels, num_classes))


def alexnet(input_channels: int, num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(input_channels, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, 1),
        nn.Flatten(),
        nn.Linear(256 * 36, 4096),
        nn.ReLU(),
        nn.Linear(4096, 4096),
        nn.ReLU(),
        nn.Linear(4096, num_classes),
    )


def torch_model(name: str, input_channels: int = 3, num_classes: int = 10) -> nn.Module:
    if name == "alexnet":
        return alexnet(input_channels, num_classes)
    if name == "vgg19":
        return vgg19(input_channels, num_classes)
    return ResNet(MODELS[name], input_channels, num_classes)


class TorchBench:
    """One PyTorch SGD step (momentum 0.9, weight decay 0.001) on a fixed random batch."""

    def __init__(self, name: str, batch_size: int, input_channels: int):
        torch.manual_seed(0)
        self.model = torch_model(name, input_channels)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.001, momentum=0.9, weight_decay=0.001)
        rng = np.random.default_rng(0)
        self.images = torch.from_numpy(rng.standard_normal((batch_size, input_channels, 32, 32), np.float32))
        self.labels = torch.from_numpy(rng.integers(0, 10, batch_size))
        self.loss = functools.partial(nn.functional.cross_entropy, target=self.labels)

    def train_call(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.loss(self.model(self.images)).backward()
        self.optimizer.step()
