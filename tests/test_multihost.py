"""Two JAX processes on this machine train one run as one process would: the launch a pod uses.

Each process runs the same main.py command with JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
JAX_PROCESS_ID set (CPU processes talk through gloo). Both are killed mid-run and restarted;
the run resumes from its checkpoint and ends with the parameters of one process that held the
whole global batch.
"""

import signal
import socket
import subprocess

import jax
import numpy as np
import pytest
from run_helpers import (
    HANG_GUARD_SECONDS,
    REPO,
    TINY,
    environment,
    main_command,
    run_main,
    saved_state,
    under_faults,
)

from flax_resnets.runs.metrics import read_jsonl

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_two_processes(args, compile_cache, *, fault=None):
    """Both processes of a run; each one's (exit status, stdout, stderr)."""
    port = free_port()
    processes = []
    for index in range(2):
        env = environment(compile_cache)
        env.update(
            JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(index)
        )
        command = main_command(args)
        if fault:
            env["SIGNAL_AT"] = fault
            command = under_faults("main.py", *args)
        processes.append(
            subprocess.Popen(
                command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outputs = [p.communicate(timeout=HANG_GUARD_SECONDS) for p in processes]
    return [(p.returncode, *output) for p, output in zip(processes, outputs, strict=True)]


def test_two_processes_train_resume_and_end_where_one_process_ends(tmp_path, compile_cache, image_folder):
    args = [
        *TINY,
        "--config.num_epochs=3",
        "--config.checkpoint_every_steps=1",
        # Each process sends its rows of the epoch's order.
        "--config.dataset=image_folder",
        f"--config.data_dir={image_folder}",
    ]
    run_main([*args, f"--workdir={tmp_path / 'one'}"], compile_cache)

    two = [*args, f"--workdir={tmp_path / 'two'}"]
    killed = run_two_processes(two, compile_cache, fault="validation:2:KILL")  # in epoch 2
    # Each is killed at the same point; one may be aborted first by JAX when its peer disappears.
    statuses = [result[0] for result in killed]
    assert set(statuses) <= {-signal.SIGKILL, -signal.SIGABRT}, killed[0][2][-2000:]
    resumed = run_two_processes(two, compile_cache)
    assert [result[0] for result in resumed] == [0, 0], resumed[0][2][-2000:] + resumed[1][2][-2000:]

    # Only process 0 writes and prints; the run is the one process's run.
    first, second = resumed[0][1], resumed[1][1]
    assert "Resuming" in first and "test accuracy" in first
    assert [line for line in second.splitlines() if not line.startswith("[Gloo]")] == []
    records = read_jsonl(tmp_path / "two" / "metrics.jsonl")
    assert [r["step"] for r in records] == [3, 6, 9]
    expected = read_jsonl(tmp_path / "one" / "metrics.jsonl")
    for record, reference in zip(records, expected, strict=True):
        assert record["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-5)
        assert record["val_accuracy"] == reference["val_accuracy"]
    # Sums over the batch are split across processes: float32 rounding, 9 steps compounded (3.6e-7
    # at most, measured). A process normalizing or training on only its own half would be off by
    # far more, and so was BatchNorm's one-pass variance (2.6e-5).
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6),
        saved_state(tmp_path / "two", 9),
        saved_state(tmp_path / "one", 9),
    )
