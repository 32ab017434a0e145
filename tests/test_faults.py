"""Faults a long run meets: killed anywhere, stopped by a scheduler, checkpoints damaged on disk.

Each interrupted run is resumed by the same command and must end with the parameters, metrics
and test report of a run that was never interrupted, bit for bit.
"""

import shutil

import pytest
from run_helpers import TINY, assert_same_run, damage, run_main, run_with_fault, tree_fingerprint

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
