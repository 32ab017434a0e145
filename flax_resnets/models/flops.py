"""Counting a program's work: 2 FLOPs per multiply-accumulate of its convolutions and dot products over
the full kernel (fvcore's convention; elementwise work left out), a scan's body once per iteration,
a strided convolution's gradient by the taps that meet its input.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def jaxpr_macs(jaxpr: Any) -> int:
    """Multiply-accumulates of every convolution and dot product in a jaxpr, nested calls included."""
    macs = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            out = eqn.outvars[0].aval.shape
            kernel = eqn.invars[1].aval.shape
            spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, spatial...) axis indices
            kernel_in = kernel[spec[1]]
            kernel_spatial = int(np.prod([kernel[axis] for axis in spec[2:]]))
            # A dilated input (the gradient of a strided convolution) is mostly inserted zeros, which
            # no multiply-accumulate needs: only 1 / prod(dilation) of the taps meet an input.
            dilated = int(np.prod(eqn.params.get("lhs_dilation") or (1,)))
            macs += int(np.prod(out)) * kernel_in * kernel_spatial // dilated
        elif eqn.primitive.name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            macs += int(np.prod(eqn.outvars[0].aval.shape)) * int(np.prod([lhs[a] for a in lhs_contract]))
        repeats = eqn.params["length"] if eqn.primitive.name == "scan" else 1
        for sub in subjaxprs(eqn):
            macs += repeats * jaxpr_macs(sub)
    return macs


def subjaxprs(eqn: Any) -> list:
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
    return 2 * jaxpr_macs(closed.jaxpr) / 1e9
