"""``python -m flax_resnets benchmark`` on a CPU with one of ``runtime.xla_cpu``'s settings taken out.

    python results/checks/xla_cpu_settings/measure.py VARIANT OUT.json [benchmark flags...]

VARIANT: ``all`` (what the trainer builds on a CPU), ``no_option`` (no compiler option),
``plain_convolution`` (``lax.conv_general_dilated``: no micro-batches, no small-map matrix product),
``no_micro_batches`` (the small-map product kept), ``no_unroll`` (``lax.scan`` over steps,
``jax.vmap`` over members). The program builder (``training.steps``) reads the backend's settings
from ``for_backend``; this replaces it for the one process.
"""

import dataclasses
import sys

from jax import lax

from flax_resnets.commands import benchmark
from flax_resnets.runtime import tuning, xla_cpu
from flax_resnets.training import steps

variant, out, *flags = sys.argv[1:]
chosen = tuning.for_backend()
changes = {
    "all": {},
    "no_option": {"compiler_options": {}},
    "plain_convolution": {"convolution": lax.conv_general_dilated},
    "no_micro_batches": {"convolution": xla_cpu.small_map_convolution},
    "no_unroll": {"unroll": False},
}[variant]
chosen = dataclasses.replace(chosen, **changes)
steps.for_backend = lambda: chosen
sys.exit(benchmark.main([*flags, f"--json={out}"]))
