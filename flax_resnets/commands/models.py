"""``python -m flax_resnets models``: parameters and forward GFLOPs of every model.

FLOPs count 2 per multiply-accumulate of the convolutions and dense layers over the full
kernel (padding included), the convention of fvcore/ptflops tables; elementwise work
(BatchNorm, ReLU, pooling) is left out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flax_resnets.cli import command_parser, positive_int
from flax_resnets.models import MODELS, count_parameters, create_model, require_models


def _jaxpr_macs(jaxpr) -> int:
    """Multiply-accumulates of every convolution and dot product in a jaxpr, nested calls included."""
    macs = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            out = eqn.outvars[0].aval.shape
            kernel = eqn.invars[1].aval.shape
            spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, spatial...) axis indices
            kernel_in = kernel[spec[1]]
            kernel_spatial = int(np.prod([kernel[axis] for axis in spec[2:]]))
            macs += int(np.prod(out)) * kernel_in * kernel_spatial
        elif eqn.primitive.name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            macs += int(np.prod(eqn.outvars[0].aval.shape)) * int(np.prod([lhs[a] for a in lhs_contract]))
        for sub in _subjaxprs(eqn):
            macs += _jaxpr_macs(sub)
    return macs


def _subjaxprs(eqn) -> list:
    """Jaxprs nested in an equation's parameters (jit, custom_jvp, ...)."""
    found = []
    for value in eqn.params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if hasattr(item, "jaxpr") and hasattr(item.jaxpr, "eqns"):
                found.append(item.jaxpr)
            elif hasattr(item, "eqns"):
                found.append(item)
    return found


def forward_gflops(model: nnx.Module, image_shape: tuple[int, int, int] = (32, 32, 3)) -> float:
    """Forward GFLOPs for one image of ``image_shape`` (H, W, C), evaluation mode."""
    graphdef, state = nnx.split(model)

    def forward(state, images):
        return nnx.merge(graphdef, state)(images, train=False)

    closed = jax.make_jaxpr(forward)(state, jnp.zeros((1, *image_shape), jnp.float32))
    return 2 * _jaxpr_macs(closed.jaxpr) / 1e9


def main(argv: list[str]) -> int:
    parser = command_parser("models", __doc__)
    parser.add_argument("--num_classes", type=positive_int, default=10)
    parser.add_argument("--input_channels", type=positive_int, default=3)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    args = parser.parse_args(argv)
    names = args.models.split(",")
    require_models(names)
    print(f"{'model':<10} {'parameters':>12} {'GFLOPs/image':>13}")
    for name in names:
        model = create_model(name, num_classes=args.num_classes, input_channels=args.input_channels)
        gflops = forward_gflops(model, (32, 32, args.input_channels))
        print(f"{name:<10} {count_parameters(model):>12,} {gflops:>13.3f}", flush=True)
    return 0
