"""PyTorch twins of the zoo's models (``torch_modules``, built from the same descriptions:
``architecture``), for ``parity``, ``export`` and ``benchmark --compare_torch``, and the weights
moved between the frameworks: layers are named as the Flax model names them
(``blocks.3.conv1.weight`` is Flax's ``blocks/3/conv1/kernel``). Only this folder imports torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from flax_resnets.config import default_config
from flax_resnets.models import MODELS, VGGS
from flax_resnets.twins.torch_modules import build


def architecture(name: str, input_channels: int = 3, num_classes: int = 10) -> dict[str, Any]:
    """The description of zoo model ``name`` that ``torch_modules.build`` makes (JSON-able)."""
    spec = MODELS[name]
    shape = {"input_channels": input_channels, "num_classes": num_classes}
    if spec == "alexnet":
        return {"family": "alexnet", **shape}
    if spec in VGGS:
        stages, hidden_features, batch_norm = VGGS[spec]
        vgg = {"stages": [list(widths) for widths in stages], "hidden_features": hidden_features}
        return {"family": "vgg", **vgg, "batch_norm": batch_norm, **shape}
    sizes, widths = list(spec.stage_sizes), list(spec.stage_widths)
    resnet = {"block": spec.block, "stage_sizes": sizes, "stage_widths": widths, "shortcut": spec.shortcut}
    return {"family": "resnet", **resnet, **shape}


def torch_model(name: str, input_channels: int = 3, num_classes: int = 10) -> nn.Module:
    """The PyTorch twin of zoo model ``name``, freshly initialised as the paper's code did."""
    return build(architecture(name, input_channels, num_classes))


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
    """Copy Flax arrays, keyed by path, into the twin: every tensor must meet an array of its shape
    and every array be used, so that a twin unlike its Flax model fails here, not silently."""
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


def sgd(
    model: nn.Module, *, learning_rate: float, momentum: float, weight_decay: float, cosine_steps: int
) -> tuple[torch.optim.Optimizer, Any]:
    """The paper's optimizer in PyTorch: SGD with momentum and weight decay on every parameter,
    and ``CosineAnnealingLR`` from the initial rate to 0 over ``cosine_steps`` scheduler steps."""
    optimizer = torch.optim.SGD(
        model.parameters(), lr=learning_rate, momentum=momentum, weight_decay=weight_decay
    )
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cosine_steps)


def paper_sgd(model: nn.Module, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """``sgd`` with the paper's recipe (``default_config``), its cosine over ``total_steps``."""
    recipe = default_config()
    return sgd(
        model,
        learning_rate=recipe.learning_rate,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        cosine_steps=total_steps,
    )


class TorchBench:
    """One PyTorch training step (the paper's SGD) on a fixed random batch, on CUDA when present
    (channels_last, cuDNN's autotuner, bfloat16 autocast; each call waits for the GPU)."""

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
