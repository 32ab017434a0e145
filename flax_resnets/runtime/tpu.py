"""TPU slices described by libtpu on a machine without a TPU, to compile for ahead of time, and each
generation's public figures. libtpu 0.0.42.1 crashes compiling a residual network for v6e in a
process started under any finite stack limit (1 GiB included) and not in one started without; lifting
it once started is too late (``stack_limit_lifted``, ``require_compiler_stack``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import resource
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import jax

from flax_resnets.errors import InputError


@dataclasses.dataclass(frozen=True)
class Chip:
    """One TPU chip's public figures: peak dense bfloat16 FLOP/s (float32 matrix products run on
    the same units at JAX's default precision), HBM bytes and HBM bytes per second."""

    generation: str
    peak_flops: float
    hbm_bytes: float
    hbm_bytes_per_second: float
    source: str


GB, GIB = 1e9, 2**30
# By device kind (what ``device.device_kind`` says), from Google Cloud's pages for each generation.
CHIPS = {
    "TPU v4": Chip("v4", 275e12, 32 * GIB, 1200 * GB, "https://cloud.google.com/tpu/docs/v4"),
    "TPU v5 lite": Chip("v5e", 197e12, 16 * GB, 819 * GB, "https://cloud.google.com/tpu/docs/v5e"),
    "TPU v5": Chip("v5p", 459e12, 95 * GB, 2765 * GB, "https://cloud.google.com/tpu/docs/v5p"),
    "TPU v6 lite": Chip("v6e", 918e12, 32 * GB, 1638 * GB, "https://cloud.google.com/tpu/docs/v6e"),
}
GENERATIONS = {chip.generation: kind for kind, chip in CHIPS.items()}
# What libtpu would otherwise ask the metadata server of a TPU VM (and complain that it cannot),
# and leave to load in several processes (it takes a lock meant for a TPU VM's chips).
QUIET_LIBTPU = {
    "TPU_SKIP_MDS_QUERY": "1",
    "TPU_WORKER_HOSTNAMES": "localhost",
    "ALLOW_MULTIPLE_LIBTPU_LOAD": "1",
}
ACCELERATOR_TYPES = {"v4": "v4-8", "v5e": "v5litepod-4", "v5p": "v5p-8", "v6e": "v6e-4"}


@dataclasses.dataclass(frozen=True)
class Slice:
    """A TPU slice: its name (``v5e:4x4``), devices (in the order a run on it lists them), hosts,
    and its chips' figures (a v4 chip holds two devices, one per TensorCore)."""

    name: str
    devices: Sequence[Any]
    hosts: int
    chip: Chip
    devices_per_chip: int


# The generations whose compiler needs a process started without a stack limit (module docstring).
UNLIMITED_STACK = ("v6e",)


@contextlib.contextmanager
def stack_limit_lifted() -> Iterator[bool]:
    """Meanwhile, this process's soft stack limit lifted (for the processes it starts) where its
    hard limit allows; whether it is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    resource.setrlimit(resource.RLIMIT_STACK, (hard if hard == resource.RLIM_INFINITY else soft, hard))
    try:
        yield hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_STACK, (soft, hard))


def require_compiler_stack(device_kind: str) -> None:
    """Before compiling on a TPU of ``UNLIMITED_STACK`` in a process started under a stack limit: the
    command started again without it, or, where the hard limit forbids that, refused in one line."""
    generation = CHIPS[device_kind].generation if device_kind in CHIPS else None
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if generation not in UNLIMITED_STACK or soft == resource.RLIM_INFINITY:
        return
    if hard != resource.RLIM_INFINITY:
        raise InputError(
            f"libtpu's compiler crashes for {generation} in a process started under a stack limit, and this "
            "one's hard limit keeps it: run the command after `ulimit -s unlimited`."
        )
    resource.setrlimit(resource.RLIMIT_STACK, (hard, hard))
    print(
        "note: starting again without a stack limit, which libtpu's compiler needs",
        file=sys.stderr,
        flush=True,
    )
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def require_libtpu() -> None:
    if importlib.util.find_spec("libtpu") is None:
        raise InputError(
            'compiling for a TPU needs libtpu, which is not installed: pip install "flax-resnets[tpu]" '
            "(on a machine without a TPU, other commands then print libtpu's warnings: keep it in an "
            "environment of its own, or set JAX_PLATFORMS=cpu)."
        )


def slice_of(name: str) -> Slice:
    """The slice ``name`` (GENERATION:TOPOLOGY, e.g. ``v5e:4x4``, ``v4:2x2x2``), described by libtpu;
    an unknown generation or a topology libtpu refuses is refused in one line."""
    generation, _, topology = name.partition(":")
    if generation not in GENERATIONS or not topology:
        raise InputError(
            f"unknown TPU slice {name!r}: write GENERATION:TOPOLOGY with a generation of "
            f"{', '.join(GENERATIONS)}, e.g. v5e:4x4 or v4:2x2x2."
        )
    require_libtpu()
    for variable, value in {**QUIET_LIBTPU, "TPU_ACCELERATOR_TYPE": ACCELERATOR_TYPES[generation]}.items():
        os.environ.setdefault(variable, value)
    jax.config.update("jax_platforms", "cpu")  # this process computes on its CPU; TPUs are targets
    from jax.experimental import topologies

    try:
        described = topologies.get_topology_desc(platform="tpu", topology_name=name)
    except Exception as error:  # libtpu raises a bare RuntimeError or XlaRuntimeError
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"libtpu cannot describe the TPU slice {name!r}: {message}") from error
    devices = list(described.devices)
    kind = devices[0].device_kind
    if kind != GENERATIONS[generation]:
        raise InputError(f"libtpu describes {name!r} with {kind!r} devices, not {GENERATIONS[generation]!r}.")
    chips = {tuple(device.coords) for device in devices}
    return Slice(
        name=name,
        devices=devices,
        hosts=len({device.process_index for device in devices}),
        chip=CHIPS[kind],
        devices_per_chip=len(devices) // len(chips),
    )
