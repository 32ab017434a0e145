"""The paper's model zoo, built by name.

>>> model = create_model("resnet18", num_classes=10, input_channels=3, seed=0)
>>> logits = model(images, train=True)   # images: (N, 32, 32, C) float, NHWC

Every model takes ``train`` at call time: True normalises with batch statistics and updates
the BatchNorm running averages, False uses the running averages and changes nothing.
Models are initialised as the paper's PyTorch code initialised them (``init="pytorch"``) unless
asked for He et al.'s initialisation (``init="he"``); see ``layers``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from flax_resnets.errors import InputError
from flax_resnets.models.alexnet import AlexNet
from flax_resnets.models.layers import INITS, Dtype, Layers
from flax_resnets.models.resnet import BasicBlock, Bottleneck, ResNet
from flax_resnets.models.vgg import VGG

IMAGENET_WIDTHS = (64, 128, 256, 512)
HE_CIFAR_WIDTHS = (16, 32, 64)


def _resnet(block: type, stage_sizes: tuple[int, ...], widths: tuple[int, ...], shortcut: str) -> Callable:
    return functools.partial(
        ResNet, block=block, stage_sizes=stage_sizes, stage_widths=widths, shortcut=shortcut
    )


def _he_cifar(depth: int, shortcut: str) -> Callable:
    n = (depth - 2) // 6
    return _resnet(BasicBlock, (n, n, n), HE_CIFAR_WIDTHS, shortcut)


MODELS: dict[str, Callable[..., nnx.Module]] = {
    "alexnet": AlexNet,
    "vgg19": VGG,
    "resnet18": _resnet(BasicBlock, (2, 2, 2, 2), IMAGENET_WIDTHS, "projection"),
    "resnet34": _resnet(BasicBlock, (3, 4, 6, 3), IMAGENET_WIDTHS, "projection"),
    "resnet50": _resnet(Bottleneck, (3, 4, 6, 3), IMAGENET_WIDTHS, "projection"),
    "resnet101": _resnet(Bottleneck, (3, 4, 23, 3), IMAGENET_WIDTHS, "projection"),
    "resnet152": _resnet(Bottleneck, (3, 8, 36, 3), IMAGENET_WIDTHS, "projection"),
    **{f"resnet{depth}": _he_cifar(depth, "pad") for depth in (8, 20, 32, 44, 56, 110)},
    "plain18": _resnet(BasicBlock, (2, 2, 2, 2), IMAGENET_WIDTHS, "none"),
    "plain34": _resnet(BasicBlock, (3, 4, 6, 3), IMAGENET_WIDTHS, "none"),
    **{f"plain{depth}": _he_cifar(depth, "none") for depth in (20, 56)},
}

# Each plain network and the residual network it is the shortcut-free twin of.
RESIDUAL_TWINS = {"plain18": "resnet18", "plain34": "resnet34", "plain20": "resnet20", "plain56": "resnet56"}


def model_names() -> list[str]:
    return list(MODELS)


def create_model(
    name: str,
    *,
    num_classes: int = 10,
    input_channels: int = 3,
    seed: int = 0,
    rngs: nnx.Rngs | None = None,
    dtype: Dtype = jnp.float32,
    init: str = "pytorch",
    convolution: Callable[..., jax.Array] | None = None,
) -> nnx.Module:
    """Build model ``name`` with float32 parameters computing in ``dtype``; ``rngs`` overrides ``seed``.

    ``convolution`` replaces ``lax.conv_general_dilated`` (same signature and results), e.g. with
    ``xla_cpu.convolution()``; it changes how the model runs, never its parameters.
    """
    if name not in MODELS:
        raise InputError(f"Unknown model {name!r}; choose one of: {', '.join(MODELS)}.")
    if init not in INITS:
        raise InputError(f"Unknown init {init!r}; choose one of: {', '.join(INITS)}.")
    if num_classes < 1 or input_channels < 1:
        raise InputError(
            f"num_classes and input_channels must be positive, got {num_classes} and {input_channels}."
        )
    return MODELS[name](
        num_classes=num_classes,
        input_channels=input_channels,
        layers=Layers(init=init, dtype=jnp.dtype(dtype), convolution=convolution or lax.conv_general_dilated),
        rngs=rngs if rngs is not None else nnx.Rngs(seed),
    )


def count_parameters(model: nnx.Module) -> int:
    """Trainable parameters (BatchNorm running statistics excluded), as PyTorch counts them."""
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


__all__ = ["INITS", "MODELS", "RESIDUAL_TWINS", "count_parameters", "create_model", "model_names"]
