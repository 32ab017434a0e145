"""The paper's model zoo, built by name from one description per model (the PyTorch twins are built from
the same): ``create_model("resnet18", num_classes=10, input_channels=3, seed=0)``, called on NHWC
float images with ``train`` (batch statistics, dropout from ``dropout_key``) or not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from flax_resnets.errors import InputError
from flax_resnets.models.alexnet import AlexNet
from flax_resnets.models.layers import INITS, Dtype, Layers
from flax_resnets.models.resnet import BasicBlock, Bottleneck, ResNet, ShortcutKind
from flax_resnets.models.vgg import HIDDEN_FEATURES, VGG, VGG8_STAGES, VGG19_STAGES

IMAGENET_WIDTHS = (64, 128, 256, 512)
HE_CIFAR_WIDTHS = (16, 32, 64)


@dataclasses.dataclass(frozen=True)
class ResNetSpec:
    """A residual network (or its plain twin): a 3x3 stem, then stages of blocks."""

    block: Literal["basic", "bottleneck"]
    stage_sizes: tuple[int, ...]
    stage_widths: tuple[int, ...]
    shortcut: ShortcutKind  # projection (option B), pad (option A) or none (a plain network)


Architecture = Literal["alexnet", "vgg19", "vgg19_bn", "vgg8"] | ResNetSpec


def _he_cifar(depth: int, shortcut: ShortcutKind) -> ResNetSpec:
    n = (depth - 2) // 6
    return ResNetSpec("basic", (n, n, n), HE_CIFAR_WIDTHS, shortcut)


MODELS: dict[str, Architecture] = {
    "alexnet": "alexnet",
    "vgg19": "vgg19",
    "vgg19_bn": "vgg19_bn",
    "vgg8": "vgg8",
    "resnet18": ResNetSpec("basic", (2, 2, 2, 2), IMAGENET_WIDTHS, "projection"),
    "resnet34": ResNetSpec("basic", (3, 4, 6, 3), IMAGENET_WIDTHS, "projection"),
    "resnet50": ResNetSpec("bottleneck", (3, 4, 6, 3), IMAGENET_WIDTHS, "projection"),
    "resnet101": ResNetSpec("bottleneck", (3, 4, 23, 3), IMAGENET_WIDTHS, "projection"),
    "resnet152": ResNetSpec("bottleneck", (3, 8, 36, 3), IMAGENET_WIDTHS, "projection"),
    **{f"resnet{depth}": _he_cifar(depth, "pad") for depth in (8, 20, 32, 44, 56, 110)},
    "plain18": ResNetSpec("basic", (2, 2, 2, 2), IMAGENET_WIDTHS, "none"),
    "plain34": ResNetSpec("basic", (3, 4, 6, 3), IMAGENET_WIDTHS, "none"),
    **{f"plain{depth}": _he_cifar(depth, "none") for depth in (8, 20, 56)},
}
BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}
# How the paper's code initialised each model where it is not PyTorch's layer defaults: its VGG
# re-initialises every convolution He fan-out normal with a zero bias.
PAPER_INITS = {"vgg19": "he", "vgg19_bn": "he", "vgg8": "he"}
# The VGG networks: (stages, classifier width, BatchNorm).
VGGS = {
    "vgg19": (VGG19_STAGES, HIDDEN_FEATURES, False),
    "vgg19_bn": (VGG19_STAGES, HIDDEN_FEATURES, True),
    "vgg8": (VGG8_STAGES, 64, False),
}

# Each plain network and the residual network it is the shortcut-free twin of.
RESIDUAL_TWINS = {
    "plain18": "resnet18",
    "plain34": "resnet34",
    **{f"plain{depth}": f"resnet{depth}" for depth in (8, 20, 56)},
}


def require_models(names: Iterable[str]) -> None:
    """Refuse names that are not models of the zoo, naming the choices."""
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise InputError(f"Unknown model(s) {', '.join(unknown)}; choose from: {', '.join(MODELS)}.")


def require_init(init: str) -> None:
    if init not in INITS:
        raise InputError(f"Unknown init {init!r}; choose one of: {', '.join(INITS)}.")


def layer_init(name: str, init: str) -> str:
    """The layer initialisation model ``name`` is built with: ``init``, or for "paper" the model's own."""
    return PAPER_INITS.get(name, "pytorch") if init == "paper" else init


def create_model(
    name: str,
    *,
    num_classes: int = 10,
    input_channels: int = 3,
    seed: int = 0,
    rngs: nnx.Rngs | None = None,
    dtype: Dtype = jnp.float32,
    init: str = "paper",
    convolution: Callable[..., jax.Array] | None = None,
) -> nnx.Module:
    """Build model ``name`` with float32 parameters computing in ``dtype``; ``rngs`` overrides
    ``seed``; ``convolution`` replaces ``lax.conv_general_dilated`` (how it runs, not its parameters)."""
    require_models([name])
    require_init(init)
    if num_classes < 1 or input_channels < 1:
        raise InputError(
            f"num_classes and input_channels must be positive, got {num_classes} and {input_channels}."
        )
    shared = dict(
        num_classes=num_classes,
        input_channels=input_channels,
        layers=Layers(
            init=layer_init(name, init),
            dtype=jnp.dtype(dtype),
            convolution=convolution or lax.conv_general_dilated,
        ),
        rngs=rngs if rngs is not None else nnx.Rngs(seed),
    )
    spec = MODELS[name]
    if spec == "alexnet":
        return AlexNet(**shared)
    if spec in VGGS:
        stages, hidden_features, batch_norm = VGGS[spec]
        return VGG(stages=stages, hidden_features=hidden_features, batch_norm=batch_norm, **shared)
    return ResNet(
        block=BLOCKS[spec.block],
        stage_sizes=spec.stage_sizes,
        stage_widths=spec.stage_widths,
        shortcut=spec.shortcut,
        **shared,
    )


def abstract_model(name: str, *, num_classes: int = 10, input_channels: int = 3) -> nnx.Module:
    """Model ``name`` with shapes for arrays, nothing initialised: its counts in a moment."""
    return nnx.eval_shape(lambda: create_model(name, num_classes=num_classes, input_channels=input_channels))


def count_parameters(model: nnx.Module) -> int:
    """Trainable parameters (BatchNorm running statistics excluded), as PyTorch counts them."""
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def named_arrays(state: nnx.State) -> dict[tuple[str, ...], np.ndarray]:
    """Every array of an ``nnx.State`` by its path of strings: ("blocks", "0", "conv1", "kernel")."""
    return {tuple(str(k) for k in path): np.asarray(v[...]) for path, v in nnx.to_flat_state(state)}
