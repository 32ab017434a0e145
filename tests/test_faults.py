"""Faults a long run meets: killed anywhere, stopped by a scheduler, checkpoints damaged on disk.

Each interrupted run is resumed by the same command and must end with the parameters, metrics
and test report of a run that was never interrupted, bit for bit.
"""

import json
import shutil
import signal
import subprocess
import sys

import pytest
from run_helpers import (
    HANG_GUARD_SECONDS,
    REPO,
    TINY,
    assert_same_run,
    damage,
    environment,
    main_in_process,
    run_main,
    run_with_fault,
    tree_fingerprint,
    under_faults,
)

from flax_resnets.interrupts import last_line
from flax_resnets.runs.metrics import read_jsonl

pytestmark = pytest.mark.slow

# 24 images in batches of 8: 3 steps per epoch, 9 in all; a checkpoint after every step. A VGG-8:
# its dropout masks too must be those of the uninterrupted run (a function of the seed and step).
RUN = [
    *TINY,
    "--config.model=vgg8",
    "--config.num_epochs=3",
    "--config.checkpoint_every_steps=1",
    "--config.keep_checkpoints=20",
]


def run_args(image_folder, workdir):
    return [
        *RUN,
        "--config.dataset=image_folder",
        f"--config.data_dir={image_folder}",
        f"--workdir={workdir}",
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, compile_cache):
    root = tmp_path_factory.mktemp("uninterrupted")
    from conftest import write_image_folder

    images = write_image_folder(root / "images")
    run_main(run_args(images, root / "run"), compile_cache)
    return images, root / "run"


def test_a_run_killed_at_every_kind_of_point_resumes_to_the_same_result(
    tmp_path, compile_cache, uninterrupted
):
    images, reference = uninterrupted
    workdir = tmp_path / "run"
    args = run_args(images, workdir)

    run_with_fault(args, compile_cache, "commit:2")  # while committing step 2's checkpoint
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["1"]
    run_with_fault(args, compile_cache, "save:2")  # step 3's save in flight (this run saves 2, 3...)
    run_with_fault(args, compile_cache, "validation:1")  # validating an epoch, before its checkpoint
    stopped = run_with_fault(args, compile_cache, "save:2", "TERM")  # a scheduler's notice: save, stop
    assert "Stopped at step" in stopped.stderr.strip().splitlines()[-1]
    run_with_fault(args, compile_cache, "test:1")  # trained to the end, testing the best checkpoint
    assert not (workdir / "eval.json").exists()

    resumed = run_main(args, compile_cache)
    assert "Resuming" in resumed.stdout
    assert_same_run(workdir, reference)


def test_ctrl_c_on_any_step_of_an_epoch_its_last_too_resumes_with_every_epochs_records(
    tmp_path, compile_cache, uninterrupted
):
    """Ctrl-C on the last step of an epoch once stopped before the epoch was validated: the resumed
    run never recorded that epoch (metrics.jsonl without it, the best checkpoint chosen without it)."""
    images, reference = uninterrupted
    workdir = tmp_path / "run"
    args = run_args(images, workdir)
    for call, step, epochs in ((3, 3, [1]), (3, 6, [1, 2])):  # mid-epoch stops: the test above
        stopped = run_with_fault(args, compile_cache, f"call:{call}", "INT")  # calls of this process
        assert stopped.stderr.strip().splitlines()[-1].startswith(f"Stopped at step {step} of 9")
        assert [record["epoch"] for record in read_jsonl(workdir / "metrics.jsonl")] == epochs
    run_main(args, compile_cache)
    assert_same_run(workdir, reference)


def test_damaged_latest_checkpoints_are_moved_aside_and_the_run_resumes(
    tmp_path, compile_cache, uninterrupted
):
    images, reference = uninterrupted
    workdir = tmp_path / "run"
    args = run_args(images, workdir)
    run_with_fault(args, compile_cache, "test:1")
    kinds = (
        "empty array files",
        "random array files",
        "truncated array files",
        "missing state metadata",
        "corrupt history",
    )
    for step, kind in zip((9, 8, 7, 6, 5), kinds, strict=True):
        damage(workdir / "checkpoints" / str(step), kind)

    for step in (9, 8):  # the whole output is the one line: no traceback from orbax's threads
        refused = run_main(
            [f"--workdir={workdir}", "--mode=eval", f"--checkpoint={step}"], compile_cache, expect=2
        )
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: The checkpoint at step {step}"), lines

    resumed = run_main(args, compile_cache)
    warnings = [line for line in resumed.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 5 and all("cannot be read" in w for w in warnings), resumed.stderr[-3000:]
    assert "Resuming" in resumed.stdout and "from step 4" in resumed.stdout
    assert sorted(p.name for p in (workdir / "damaged_checkpoints").iterdir()) == ["5", "6", "7", "8", "9"]
    assert_same_run(workdir, reference)


def test_ctrl_c_while_evaluating_is_one_line_and_changes_nothing(tmp_path, compile_cache, uninterrupted):
    _, reference = uninterrupted
    workdir = shutil.copytree(reference, tmp_path / "run")
    before = tree_fingerprint(workdir)
    interrupted = run_with_fault([f"--workdir={workdir}", "--mode=eval"], compile_cache, "evaluate:1", "INT")
    assert interrupted.stderr.strip().splitlines() == [
        "Interrupted: files already written are whole; run the same command to resume or evaluate."
    ]
    assert tree_fingerprint(workdir) == before


def test_a_full_disk_while_evaluating_is_one_line_and_changes_nothing(tmp_path, compile_cache, uninterrupted):
    """A file-size limit (what a full disk does to a write) on --mode=eval: eval.json cannot be
    written; one line names it and the reason, exit status 1, and the workdir is as it was."""
    _, reference = uninterrupted
    workdir = shutil.copytree(reference, tmp_path / "run")

    before = tree_fingerprint(workdir)  # sizes, times and hashes: not a file touched
    result = subprocess.run(
        under_faults("main.py", f"--workdir={workdir}", "--mode=eval"),
        cwd=REPO,
        env={**environment(compile_cache), "FILE_SIZE_LIMIT": "500"},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    *warnings, last = result.stderr.strip().splitlines()
    assert last == f"error: {workdir / 'eval.json'}: File too large."
    assert all(line.startswith("warning: cannot write the decoded-image cache") for line in warnings)
    assert tree_fingerprint(workdir) == before


HOLD_THE_LOCK = """
import fcntl, sys, time
with open(sys.argv[1], "a+") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    lock.truncate(0)
    lock.write("4242\\n")
    lock.flush()
    print("held", flush=True)
    time.sleep(600)
"""


def test_an_evaluation_beside_a_live_training_never_writes_the_trainings_eval_json(
    tmp_path, compile_cache, uninterrupted
):
    """The training writes eval.json when it ends; an evaluation that finished after it once
    replaced it with an earlier step's. Whether it may is decided when it writes, under the lock."""
    _, reference = uninterrupted
    workdir = shutil.copytree(reference, tmp_path / "run")
    before = (workdir / "eval.json").read_bytes()
    training = subprocess.Popen(  # holds the workdir's lock as a training does
        [sys.executable, "-c", HOLD_THE_LOCK, str(workdir / ".lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert training.stdout.readline() == "held\n"
        evaluated = run_main([f"--workdir={workdir}", "--mode=eval"], compile_cache)
    finally:
        training.kill()
        training.wait()
    assert (workdir / "eval.json").read_bytes() == before
    step = json.loads(before)["checkpoint_step"]
    assert (
        json.loads((workdir / f"eval_step{step}.json").read_text())["test_accuracy"]
        == json.loads(before)["test_accuracy"]
    )
    assert "a run is training in" in evaluated.stderr and "(pid 4242)" in evaluated.stderr
    # Decided as it writes: a training that ended meanwhile left eval.json of a later step, kept too.
    later = {**json.loads(before), "checkpoint_step": step + 1}
    (workdir / "eval.json").write_text(json.dumps(later))
    (workdir / f"eval_step{step}.json").unlink()
    evaluated = main_in_process([f"--workdir={workdir}", "--mode=eval"])
    assert evaluated.returncode == 0 and json.loads((workdir / "eval.json").read_text()) == later
    assert (workdir / f"eval_step{step}.json").is_file()
    assert f"eval.json records a later step ({step + 1})" in evaluated.stderr


def assert_interrupted_in_one_line(result):
    """Exit 130 with one line (a training loop's: the checkpoint it saved); a signal that came after
    the result was printed may also find the program gone (0) or in Python's last teardown, where
    the default action ends it (-SIGINT, 130 in a shell). Never a traceback, a swallowed signal or
    a crash."""
    status, stdout, stderr = result.returncode, result.stdout, result.stderr
    assert not any(word in stderr for word in ("Traceback", "Exception ignored", "Fatal")), stderr[-3000:]
    if "test accuracy" in stdout and status in (0, -signal.SIGINT, 130):
        return
    last = stderr.strip().splitlines()[-1]
    assert status == 130, f"exit {status}\n{stderr[-3000:]}"
    ended = last in (last_line(signal.SIGINT, "train"), "Interrupted.") or last.startswith("Stopped at step")
    assert ended, stderr[-3000:]


# Ctrl-C at each moment of an evaluation and of a resume (once it crashed the process, was
# swallowed, or became an ImportError): while the libraries load, once restored (before compiling),
# while testing, and once the result is printed (Python's teardown): fault points, not timers.
MOMENTS = {
    "eval": ["loading:1", "evaluate:1", "working:1"],
    "resume": ["loading:1", "working:1", "test:1", "working:4"],
}


@pytest.mark.parametrize("mode", ["eval", "resume"])
def test_ctrl_c_at_any_moment_of_an_evaluation_or_a_resume_exits_130_in_one_line(
    tmp_path, compile_cache, uninterrupted, mode
):
    images, reference = uninterrupted
    workdir = shutil.copytree(reference, tmp_path / "run")
    if mode == "resume":
        for step in range(4, 10):  # back to the end of the first epoch
            shutil.rmtree(workdir / "checkpoints" / str(step))
        (workdir / "eval.json").unlink()
    args = run_args(images, workdir) if mode == "resume" else [f"--workdir={workdir}", "--mode=eval"]
    for moment in MOMENTS[mode]:
        assert_interrupted_in_one_line(run_with_fault(args, compile_cache, moment, "INT", check=False))
    run_main(args, compile_cache)
    assert_same_run(workdir, reference)
