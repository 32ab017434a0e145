"""Running main.py as a user does, and reading back what a run left behind."""

import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from flax_resnets.runs.metrics import TIMING_FIELDS, read_jsonl

REPO = Path(__file__).resolve().parents[1]
# Only against a hung process: far beyond what any run here takes on the slowest machine, so it
# never decides a verdict on speed.
HANG_GUARD_SECONDS = 3600

TINY = [  # a ResNet-8 trained for a few steps: the whole product path in seconds
    "--config=configs/default.py",
    "--config.model=resnet8",
    "--config.batch_size=8",
    "--config.eval_batch_size=16",
    "--config.num_epochs=2",
    "--config.learning_rate=0.05",
]


@contextlib.contextmanager
def mock_tfds(num_examples):
    """``tfds.testing.mock_data``, its datasets also reported prepared (the mock reads them, and
    leaves ``is_prepared``, which the product asks first, to say False)."""
    import tensorflow_datasets as tfds

    with (
        tfds.testing.mock_data(num_examples=num_examples),
        mock.patch.object(tfds.core.DatasetBuilder, "is_prepared", return_value=True),
    ):
        yield


def main_command(args, *, mock_examples=None):
    """``python main.py ARGS``, optionally inside ``mock_tfds``."""
    if mock_examples is None:
        return [sys.executable, "main.py", *args]
    code = (
        f"import runpy, sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from run_helpers import mock_tfds\n"
        "sys.argv = ['main.py', *sys.argv[1:]]\n"
        f"with mock_tfds({mock_examples}):\n"
        "    runpy.run_path('main.py', run_name='__main__')\n"
    )
    return [sys.executable, "-c", code, *args]


def environment(compile_cache, devices=1):
    env = dict(os.environ)
    env["JAX_COMPILATION_CACHE_DIR"] = str(compile_cache)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PLATFORMS"] = "cpu"
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def main_in_process(args, *, mock_examples=None):
    """``python main.py ARGS`` run in this process, as the command runs it (its refusals and
    failures through ``run_command``): its exit status, stdout and stderr."""
    from flax_resnets.cli import run_command
    from flax_resnets.commands import train

    out, err, cwd = io.StringIO(), io.StringIO(), os.getcwd()
    data = mock_tfds(mock_examples) if mock_examples else contextlib.nullcontext()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), data:
            status = run_command(lambda argv: train.main(argv, program="main.py"), list(args))
    except SystemExit as exit_status:
        status = exit_status.code
    finally:
        os.chdir(cwd)
    return subprocess.CompletedProcess(args, status, out.getvalue(), err.getvalue())


def trained_here(args, *, mock_examples=None):
    """A run that a test only reads, trained in this process (no process to start): main.py ARGS."""
    result = main_in_process(args, mock_examples=mock_examples)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-3000:]}"
    return result


def run_main(args, compile_cache, *, mock_examples=None, devices=1, expect=0, own_process=False):
    """``python main.py ARGS`` expecting exit status ``expect``: a refusal (2) on one device in this
    process (it comes before any training), anything else (or ``own_process``) in a process of its own."""
    if expect == 2 and devices == 1 and not own_process:
        result = main_in_process(args, mock_examples=mock_examples)
        assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-3000:]}"
        return result
    result = subprocess.run(
        main_command(args, mock_examples=mock_examples),
        cwd=REPO,
        env=environment(compile_cache, devices),
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
    )
    assert result.returncode == expect, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-3000:]}"
    return result


def saved_state(workdir, step=None):
    """The arrays of a checkpoint's training state on this process's first device, whatever the
    devices that saved it."""
    root = Path(workdir) / "checkpoints"
    step = step if step is not None else max(int(p.name) for p in root.iterdir() if p.name.isdigit())
    path = (root / str(step) / "state").absolute()
    checkpointer = ocp.StandardCheckpointer()
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
        checkpointer.metadata(path).item_metadata,
    )
    return checkpointer.restore(path, target)


def approx_numbers(record, *, rel):
    """``record`` with its floats (also in nested lists and records: a run's members) compared up to
    ``rel`` and everything else (names, counts) exactly."""
    if isinstance(record, dict):
        return {k: approx_numbers(v, rel=rel) for k, v in record.items()}
    if isinstance(record, list):
        return [approx_numbers(v, rel=rel) for v in record]
    return pytest.approx(record, rel=rel) if isinstance(record, float) else record


def without_timing(records):
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


def tree_fingerprint(root):
    """Every file under ``root`` with its size, mtime and content hash (a run's lock file aside: it
    holds the pid of whoever held it last, an evaluation writing its result too)."""
    return {
        str(p.relative_to(root)): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(Path(root).rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def run_with_fault(args, compile_cache, fault, signal_name="KILL", *, check=True):
    """Run main.py with ``fault`` ("MOMENT:N", ``UNDER_FAULTS``); it must have been stopped by the
    signal (``check``)."""
    env = {**environment(compile_cache), "SIGNAL_AT": f"{fault}:{signal_name}"}
    result = subprocess.run(
        under_faults("main.py", *args),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
    )
    statuses = {"KILL": -signal.SIGKILL, "TERM": 128 + signal.SIGTERM, "INT": 128 + signal.SIGINT}
    expected = statuses[signal_name]
    assert not check or result.returncode == expected, (
        f"{fault} did not stop the run:\n{result.stderr[-2000:]}"
    )
    return result


def assert_same_run(workdir, reference):
    assert without_timing(read_jsonl(workdir / "metrics.jsonl")) == without_timing(
        read_jsonl(reference / "metrics.jsonl")
    )
    jax.tree.map(np.testing.assert_array_equal, saved_state(workdir, 9), saved_state(reference, 9))
    assert json.loads((workdir / "eval.json").read_text()) == json.loads(
        (reference / "eval.json").read_text()
    )


def damage(step_dir: Path, kind: str) -> None:
    if kind == "truncated array files":  # a disk that filled up while they were written
        for data in (step_dir / "state").rglob("d/*"):
            os.truncate(data, 16)
    elif kind == "empty array files":
        for data in (step_dir / "state").rglob("d/*"):
            os.truncate(data, 0)
    elif kind == "random array files":  # bits flipped in storage or transfer
        for data in (step_dir / "state").rglob("d/*"):
            data.write_bytes(np.random.default_rng(0).bytes(data.stat().st_size))
    elif kind == "missing state metadata":  # an interrupted copy
        (step_dir / "state" / "_METADATA").unlink()
    elif kind == "corrupt history":
        (step_dir / "history" / "metadata").write_text("{not json")
    else:
        raise ValueError(kind)


def crash_the_first_time(*args):
    """A compiler that crashes in its first process only (v6e's, now and then), then finds that the
    program does not fit (None: nothing to compile for the test)."""
    marker = Path(os.environ["CRASHED_MARKER"])
    if not marker.exists():
        marker.touch()
        os.abort()
    return None


def refuse_or_wait(config_json, slice_name, only_training):
    """A compiling child that refuses its config (slice "refused") or compiles for ever."""
    if slice_name == "refused":
        from flax_resnets.errors import InputError

        raise InputError("refused")
    time.sleep(HANG_GUARD_SECONDS)


# ``python ARGS`` (``SCRIPT ...`` or ``-m MODULE ...``) under the faults its environment names, set
# by the child itself before it runs (a preexec_fn would run in a fork of this multithreaded
# process): FILE_SIZE_LIMIT=BYTES, what a full disk does to a write (Python ignores SIGXFSZ, so a
# write past it raises); SIGNAL_AT=MOMENT:N:NAME, the signal NAME (INT: Ctrl-C; TERM: what a
# scheduler sends before preempting; KILL: no cleanup at all) sent the N-th time it reaches MOMENT:
#   loading: JAX begins to import (a signal there once became an ImportError or a traceback);
#   working: it has printed a line (its work begun, a result on the way);
#   writing: it has written a file's content, not yet flushed, renamed or whole;
# and, in main.py's training and evaluation:
#   commit: a checkpoint's files are written, its step folder not yet committed;
#   save: a save was started and is being written in the background;
#   call: a compiled training call has returned;
#   validation: an epoch is trained, its validation runs, nothing saved yet;
#   test: training is over, the best checkpoint is being tested;
#   evaluate: --mode=eval is testing the checkpoint.
UNDER_FAULTS = """
import builtins, functools, importlib.abc, os, resource, runpy, signal, sys

if "FILE_SIZE_LIMIT" in os.environ:
    limit = int(os.environ["FILE_SIZE_LIMIT"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
if "SIGNAL_AT" in os.environ:
    moment, count, name = os.environ["SIGNAL_AT"].split(":")
    # Ctrl-C as in a terminal, even where the tests were started in the background (SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reached = [0]

    def arrive():
        reached[0] += 1
        if reached[0] == int(count):
            os.kill(os.getpid(), getattr(signal, "SIG" + name))

    def before(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            arrive()
            return function(*args, **kwargs)
        return wrapper

    def after(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            result = function(*args, **kwargs)
            arrive()
            return result
        return wrapper

    if moment == "loading":
        class ArriveWhenJaxLoads(importlib.abc.MetaPathFinder):
            def find_spec(self, fullname, path, target=None):
                if fullname == "jax":
                    arrive()
                return None

        sys.meta_path.insert(0, ArriveWhenJaxLoads())
    elif moment == "working":
        builtins.print = after(builtins.print)
    elif moment == "writing":
        from flax_resnets import files

        original_write = files._atomic_write

        def _atomic_write(path, write, *, binary):
            return original_write(path, after(write), binary=binary)

        files._atomic_write = _atomic_write
    elif moment == "commit":
        from orbax.checkpoint._src.path import atomicity

        for cls in (atomicity.AtomicRenameTemporaryPath, atomicity.CommitFileTemporaryPath):
            async def finalize(self, *args, _original=cls.finalize, **kwargs):
                if self.get_final().name.isdigit():  # a step, not one of its items
                    arrive()
                return await _original(self, *args, **kwargs)

            cls.finalize = finalize
    else:
        from flax_resnets.training import checkpoints, evaluate, loop

        if moment == "save":
            checkpoints.Checkpoints.save = after(checkpoints.Checkpoints.save)
        elif moment == "call":
            import dataclasses
            from flax_resnets.training import programs

            build = programs.build_programs
            programs.build_programs = lambda *args, **kwargs: (
                lambda program: dataclasses.replace(program, train=after(program.train))
            )(build(*args, **kwargs))
        elif moment == "validation":
            loop.evaluate_split = before(loop.evaluate_split)
        elif moment == "test":
            loop.test_report = before(loop.test_report)
        elif moment == "evaluate":
            evaluate.test_report = before(evaluate.test_report)
        else:
            raise ValueError(moment)
if sys.argv[1] == "-m":
    sys.argv = [sys.argv[2], *sys.argv[3:]]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def under_faults(*args):
    """``python ARGS`` as a command run under the faults its environment names (``UNDER_FAULTS``)."""
    return [sys.executable, "-c", UNDER_FAULTS, *args]
