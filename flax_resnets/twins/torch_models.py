"""PyTorch twins of the zoo's models, for ``python -m flax_resnets parity`` and
``benchmark --compare_torch``.

Each twin is written from the paper's description of its model (``RECIPE.md`` beside the paper;
for the residual networks, from their ``ResNetSpec`` in ``flax_resnets.models.registry``), never
from the Flax modules themselves: the paper's AlexNet and VGG19s with their dropout, the
kuangliu/pytorch-cifar ResNets the paper's parameter counts come from, each initialised as the
paper's code initialised it (PyTorch's defaults; VGG's convolutions re-drawn He fan-out normal
with zero biases). Layers are named as the Flax model names them (``blocks.3.conv1.weight`` is
Flax's ``blocks/3/conv1/kernel``), so one set of weights can be copied across
(``load_flax_weights``). PyTorch is imported only here (``pip install -e ".[test]"`` or ``".[bench]"``).

Dropout draws from torch's generator, as ``nn.Dropout`` does, unless given the masks to use
(``feed_dropout_masks``): then a parity check runs both frameworks with the same masks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from flax_resnets.config import default_config
from flax_resnets.models import MODELS, VGGS, ResNetSpec
from flax_resnets.models.alexnet import FEATURE_MAP_SIZE
from flax_resnets.models.vgg import DROPOUT_RATE

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
    def __init__(self, spec: ResNetSpec, input_channels: int, num_classes: int):
        super().__init__()
        widths, sizes, shortcut = spec.stage_widths, spec.stage_sizes, spec.shortcut
        bottleneck = spec.block == "bottleneck"
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
        self, input_channels: int, num_classes: int, stages: Any, hidden_features: int, batch_norm: bool
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
    def __init__(self, input_channels: int, num_classes: int):
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


def torch_model(name: str, input_channels: int = 3, num_classes: int = 10) -> nn.Module:
    """The PyTorch twin of zoo model ``name``, freshly initialised with PyTorch's defaults."""
    spec = MODELS[name]
    if spec == "alexnet":
        return AlexNet(input_channels, num_classes)
    if spec in VGGS:
        return VGG(input_channels, num_classes, *VGGS[spec])
    return ResNet(spec, input_channels, num_classes)


# OIHW kernels <-> HWIO, (out, in) matrices <-> (in, out): PyTorch's layouts and Flax's.
TO_FLAX_LAYOUT = {4: (2, 3, 1, 0), 2: (1, 0)}
TO_TORCH_LAYOUT = {4: (3, 2, 0, 1), 2: (1, 0)}
FLAX_LEAVES = {"bias": "bias", "running_mean": "mean", "running_var": "var"}


def flax_path(torch_name: str, ndim: int) -> tuple[str, ...]:
    """Flax's path of a twin's tensor: ``blocks.0.bn1.weight`` -> ("blocks", "0", "bn1", "scale")
    (the classifier's layers sit at the Flax model's top level)."""
    *prefix, leaf = torch_name.removeprefix("classifier.").split(".")
    if leaf == "weight":
        return (*prefix, "kernel" if ndim > 1 else "scale")
    return (*prefix, FLAX_LEAVES[leaf])


def torch_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter and BatchNorm running statistic, by dotted name (the batch counters left out)."""
    yield from model.named_parameters()
    for name, buffer in model.named_buffers():
        if not name.endswith("num_batches_tracked"):
            yield name, buffer


def flax_layout_arrays(model: nn.Module, dtype: Any = np.float32) -> dict[tuple[str, ...], np.ndarray]:
    """The twin's parameters and running statistics as ``dtype`` arrays, keyed and laid out as Flax's."""
    arrays = {}
    for name, tensor in torch_tensors(model):
        array = tensor.detach().cpu().double().numpy().astype(dtype)
        arrays[flax_path(name, array.ndim)] = array.transpose(TO_FLAX_LAYOUT.get(array.ndim, (0,)))
    return arrays


def load_flax_weights(model: nn.Module, flax_arrays: Mapping[tuple[str, ...], np.ndarray]) -> None:
    """Copy Flax arrays, keyed by path (``("blocks", "3", "conv1", "kernel")``), into the twin.

    Every tensor of the twin must be matched by an array of its shape, and every array used: a
    twin that differs from its Flax model fails here, not silently.
    """
    unused = set(flax_arrays)
    with torch.no_grad():
        for name, tensor in torch_tensors(model):
            path = flax_path(name, tensor.ndim)
            if path not in flax_arrays:
                raise ValueError(f"The PyTorch tensor {name} has no Flax counterpart {'/'.join(path)}.")
            array = np.asarray(flax_arrays[path]).transpose(TO_TORCH_LAYOUT.get(tensor.ndim, (0,)))
            if tuple(array.shape) != tuple(tensor.shape):
                raise ValueError(f"{name}: PyTorch shape {tuple(tensor.shape)}, Flax {array.shape}.")
            tensor.copy_(torch.tensor(array))
            unused.discard(path)
    if unused:
        raise ValueError(f"Flax arrays without a PyTorch counterpart: {sorted(unused)[:5]}.")


def paper_sgd(model: nn.Module, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """The paper's optimizer in PyTorch, from the same recipe as training: SGD with momentum and
    weight decay on every parameter, CosineAnnealingLR from the initial rate to 0 over
    ``total_steps`` scheduler steps."""
    recipe = default_config()
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe.learning_rate,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
    )
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)


class TorchBench:
    """One PyTorch training step (the paper's SGD) on a fixed random batch, on CUDA when present.

    On a GPU: channels_last memory, cuDNN's autotuner, bfloat16 autocast for ``dtype="bfloat16"``,
    and each call waits for the GPU, so that timing it measures the step.
    """

    def __init__(self, name: str, batch_size: int, input_channels: int, dtype: str = "float32"):
        torch.manual_seed(0)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.cuda = self.device.type == "cuda"
        memory_format = torch.channels_last if self.cuda else torch.contiguous_format
        torch.backends.cudnn.benchmark = True
        self.model = torch_model(name, input_channels).to(self.device, memory_format=memory_format)
        self.optimizer, _ = paper_sgd(self.model, total_steps=10_000)
        rng = np.random.default_rng(0)
        images = torch.from_numpy(rng.standard_normal((batch_size, input_channels, 32, 32), np.float32))
        self.images = images.to(self.device, memory_format=memory_format)
        self.labels = torch.from_numpy(rng.integers(0, 10, batch_size)).to(self.device)
        self.autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if dtype == "bfloat16"
            else contextlib.nullcontext()
        )

    def train_call(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            loss = nn.functional.cross_entropy(self.model(self.images), self.labels)
        loss.backward()
        self.optimizer.step()
        if self.cuda:
            torch.cuda.synchronize()
