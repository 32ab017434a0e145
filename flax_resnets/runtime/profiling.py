"""Where a compiled training step spends its time (``benchmark --profile_dir``): a ``jax.profiler``
trace summed per XLA op and grouped by kind, beside the step's wall time. A device busy for much
less than the wall time waits on the host; time in transposes and fusions means memory-bound.
"""

from __future__ import annotations

import collections
import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

# What an op is, read from its XLA name and its kernel's name, in the order they are tried.
OP_KINDS = (
    (
        "convolution/matmul",
        re.compile(r"convolution|conv_general|cudnn|gemm|\bdot|xmma|cutlass|matmul", re.I),
    ),
    ("transpose/copy", re.compile(r"transpose|copy|bitcast", re.I)),
    ("reduction", re.compile(r"reduce", re.I)),
    ("fusion", re.compile(r"fusion", re.I)),
)


def op_kind(op: str, kernel: str) -> str:
    for kind, pattern in OP_KINDS:
        if pattern.search(op) or pattern.search(kernel):
            return kind
    return "other"


def trace(call: Callable[[], Any], calls: int, directory: Path) -> Path:
    """Runs ``call`` ``calls`` times, each waited for, under the profiler; returns the trace file."""
    directory = Path(directory)
    with jax.profiler.trace(str(directory), create_perfetto_trace=True):
        for _ in range(calls):
            jax.block_until_ready(call())
    return max(directory.glob("plugins/profile/*/perfetto_trace.json.gz"), key=lambda p: p.stat().st_mtime)


def op_times(trace_file: Path) -> list[dict[str, Any]]:
    """Every XLA op execution in a Perfetto trace: device, op, kernel and microseconds (inside a GPU's
    CUDA graphs, ``command_buffer_N``, the kernel's name, its fusion's, names the op)."""
    events = json.loads(gzip.decompress(Path(trace_file).read_bytes()))["traceEvents"]
    process_names = {
        e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"
    }
    ops = [
        {
            "device": process_names.get(e["pid"], str(e["pid"])),
            "op": e["name"] if e["args"]["hlo_op"].startswith("command_buffer") else e["args"]["hlo_op"],
            "kernel": e["name"],
            "us": float(e["dur"]),
        }
        for e in events
        if e.get("ph") == "X" and "hlo_op" in e.get("args", {})
    ]
    on_devices = [op for op in ops if op["device"].startswith("/device:")]
    return on_devices or ops


def summary(trace_file: Path, calls: int, wall_seconds_per_call: float, top: int = 12) -> dict[str, Any]:
    """Per call: device-busy milliseconds beside wall milliseconds, time per op kind, and the
    ``top`` ops by time (an op that runs several kernels is one row)."""
    ops = op_times(trace_file)
    busy = sum(op["us"] for op in ops) / 1e3 / calls
    by_kind: dict[str, float] = collections.Counter()
    by_op: dict[str, float] = collections.Counter()
    kernels: dict[str, str] = {}
    for op in ops:
        by_kind[op_kind(op["op"], op["kernel"])] += op["us"] / 1e3 / calls
        by_op[op["op"]] += op["us"] / 1e3 / calls
        kernels.setdefault(op["op"], op["kernel"])
    return {
        "wall ms": wall_seconds_per_call * 1e3,
        "device busy ms": busy,
        "kinds": [
            {"kind": kind, "ms": ms, "share": ms / busy}
            for kind, ms in sorted(by_kind.items(), key=lambda x: -x[1])
        ],
        "top ops": [
            {
                "op": op,
                "kind": op_kind(op, kernels[op]),
                "ms": ms,
                "share": ms / busy,
                "kernel": kernels[op][:60],
            }
            for op, ms in sorted(by_op.items(), key=lambda x: -x[1])[:top]
        ],
    }
