"""One run per workdir, and nothing mixed: a second run on a busy workdir, a run resumed or
evaluated on other data, and a hand-edited config.json are refused in one line, leaving every
file of the run as it was."""

import json
import re
import shutil

import pytest
from conftest import write_image_folder
from run_helpers import TINY, main_in_process, run_main, trained_here, tree_fingerprint

from flax_resnets.files import WorkdirLock

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, compile_cache):
    """A finished ResNet-8 run on a 3-class image folder."""
    root = tmp_path_factory.mktemp("folder_run")
    images = write_image_folder(root / "images")
    workdir = root / "run"
    trained_here([*folder_args(images), "--config.num_epochs=1", f"--workdir={workdir}"])
    return images, workdir


def folder_args(images):
    return [*TINY, "--config.dataset=image_folder", f"--config.data_dir={images}"]


def refused(args, workdir, compile_cache, own_process=False):
    """Run main.py, expecting one refusal that leaves ``workdir`` byte-identical; its line."""
    before = tree_fingerprint(workdir)
    result = run_main([*args, f"--workdir={workdir}"], compile_cache, expect=2, own_process=own_process)
    assert tree_fingerprint(workdir) == before
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: "), result.stderr[-2000:]
    return lines[-1]


def test_a_second_run_on_a_busy_workdir_is_refused_with_the_holders_pid(folder_run, compile_cache):
    images, workdir = folder_run
    with WorkdirLock(workdir):  # this test process is the run in flight
        line = refused([*folder_args(images), "--config.num_epochs=1"], workdir, compile_cache)
    assert "is in use by another run (pid " in line and "use another --workdir" in line


def test_resuming_on_other_images_of_the_same_shape_is_refused(folder_run, tmp_path, compile_cache):
    images, workdir = folder_run
    other = write_image_folder(tmp_path / "other", size=(30, 30))  # 3 classes, as many images
    line = refused([*folder_args(other), "--config.num_epochs=1"], workdir, compile_cache)
    assert "holds a run on other data (the images or labels differ)" in line


def test_resuming_or_evaluating_on_another_class_folder_is_refused(folder_run, tmp_path, compile_cache):
    images, workdir = folder_run
    four_classes = write_image_folder(tmp_path / "four", classes=4)
    for extra in ([], ["--mode=eval"]):
        line = refused([*folder_args(four_classes), "--config.num_epochs=1", *extra], workdir, compile_cache)
        assert "holds a run on other data (3 classes there, 4 now" in line
    assert (workdir / "checkpoints").is_dir() and not (workdir / "damaged_checkpoints").exists()


def test_a_hand_edited_config_with_a_wrong_type_is_one_line(folder_run, tmp_path, compile_cache):
    _, workdir = folder_run
    edited = tmp_path / "edited"
    edited.mkdir()
    config = json.loads((workdir / "config.json").read_text())
    config["batch_size"] = "8"
    (edited / "config.json").write_text(json.dumps(config))
    line = refused(["--mode=eval"], edited, compile_cache)
    assert line.startswith("error: config.batch_size must be an integer, got '8'")


def test_checkpoints_that_cannot_be_written_stop_the_run_at_once(folder_run, tmp_path, compile_cache):
    images, finished = folder_run
    workdir = shutil.copytree(finished, tmp_path / "run")
    shutil.rmtree(workdir / "checkpoints")
    (workdir / "checkpoints").write_text("a file in the way")  # as a read-only or full disk would
    line = refused([*folder_args(images), "--config.num_epochs=1"], workdir, compile_cache)
    assert line.startswith(f"error: {workdir / 'checkpoints'} is a file, not a folder to write into")
    line = refused(["--mode=eval"], workdir, compile_cache)
    assert line.endswith("checkpoints is a file, not the run's checkpoints folder: restore it.")


@pytest.mark.parametrize("fault", ["a name too long", "a path too long", "a dangling link"])
def test_a_workdir_the_file_system_cannot_hold_is_refused_before_any_work(folder_run, tmp_path, fault):
    """Once, such a workdir trained an epoch before its first checkpoint failed (ENAMETOOLONG)."""
    images, _ = folder_run
    workdir = {
        "a name too long": tmp_path / ("x" * 250),
        "a path too long": tmp_path.joinpath(*["y" * 200] * 20),  # its checkpoints' paths over 4,096 bytes
        "a dangling link": tmp_path / "link",
    }[fault]
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    result = main_in_process([*folder_args(images), "--config.num_epochs=1", f"--workdir={workdir}"])
    expected = "which does not exist" if fault == "a dangling link" else "is too long for this file system"
    assert result.returncode == 2 and expected in result.stderr.strip(), result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link"]


FOLDERS_IN_PLACE = {".lock": "cannot be opened as the run's lock", "eval.json": "is a folder, not a file"}


@pytest.mark.parametrize(
    "name, mode",
    [("config.json", "eval"), ("data.json", "train"), ("data.json", "eval"), (".lock", "train")]
    + [("eval.json", "eval")],
)
def test_a_run_file_that_is_not_what_it_should_be_is_one_line(
    folder_run, tmp_path, compile_cache, name, mode
):
    """A JSON file that parses but is no record (``[]``), a lock or eval.json that is a folder (once
    named by a temporary file, after the whole evaluation): refused, named."""
    images, finished = folder_run
    workdir = shutil.copytree(finished, tmp_path / "run")
    if name in FOLDERS_IN_PLACE:
        (workdir / name).unlink(missing_ok=True)
        (workdir / name).mkdir()
    else:
        (workdir / name).write_text("[]")
    args = [*folder_args(images), "--config.num_epochs=1"] if mode == "train" else []
    line = refused([*args, f"--mode={mode}"], workdir, compile_cache)
    expected = FOLDERS_IN_PLACE.get(name, "holds a JSON list, not an object")
    assert f"{workdir / name}" in line and expected in line


def test_reports_refuse_a_run_whose_files_are_not_records(folder_run, tmp_path):
    import subprocess
    import sys

    _, finished = folder_run
    for name, text in (("eval.json", "[1]"), ("metrics.jsonl", '{"epoch": 1}\n[2]\n{"epoch": 3}\n')):
        workdir = shutil.copytree(finished, tmp_path / name)
        (workdir / name).write_text(text)
        result = subprocess.run(
            [sys.executable, "-m", "flax_resnets", "reports", str(workdir)], capture_output=True, text=True
        )
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and "not a" in lines[0], result.stderr[-2000:]


def test_a_run_without_data_json_is_checked_by_its_run_record(folder_run, tmp_path, compile_cache):
    """A kept run holds config, metrics, eval and run.json only: its data is still checked, a
    checkpoint of another model is never called damaged, and the same data still evaluates."""
    images, finished = folder_run
    workdir = shutil.copytree(finished, tmp_path / "run")
    (workdir / "data.json").unlink()
    four_classes = write_image_folder(tmp_path / "four", classes=4)
    line = refused([*folder_args(four_classes), "--config.num_epochs=1"], workdir, compile_cache)
    assert "holds a run on other data (" in line and "3 classes there, 4 now" in line
    assert not (workdir / "damaged_checkpoints").exists()

    same_shape = write_image_folder(tmp_path / "other", size=(30, 30))
    line = refused([*folder_args(same_shape), "--config.num_epochs=1", "--mode=eval"], workdir, compile_cache)
    assert "holds a run on other data (mean [" in line

    run_main([f"--workdir={workdir}", "--mode=eval"], compile_cache)
    accuracy = [json.loads((w / "eval.json").read_text())["test_accuracy"] for w in (workdir, finished)]
    assert accuracy[0] == accuracy[1]

    (workdir / "run.json").unlink()
    line = refused(["--mode=eval"], workdir, compile_cache)
    assert "holds checkpoints but neither data.json nor run.json" in line


# main.py under a limit on the size of any file it writes: a checkpoint fails part-way, as on a full disk.
UNDER_A_FILE_SIZE_LIMIT = (
    "import resource, runpy, sys\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
    "sys.argv = ['main.py', *sys.argv[1:]]\n"
    "runpy.run_path('main.py', run_name='__main__')\n"
)


def test_a_checkpoint_write_that_fails_part_way_is_one_line_and_the_run_resumes(tmp_path, compile_cache):
    import subprocess
    import sys

    from run_helpers import HANG_GUARD_SECONDS, REPO, environment

    images = write_image_folder(tmp_path / "images")
    args = [*folder_args(images), "--config.num_epochs=1", f"--workdir={tmp_path / 'run'}"]
    failed = subprocess.run(
        [sys.executable, "-c", UNDER_A_FILE_SIZE_LIMIT, *args],
        cwd=REPO,
        env=environment(compile_cache),
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
    )
    last = failed.stderr.strip().splitlines()[-1]
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr[-3000:]
    assert last.startswith(f"error: A checkpoint could not be written in {tmp_path / 'run' / 'checkpoints'}")
    assert "(File too large)" in last and "then run the same command to resume." in last
    resumed = run_main(args, compile_cache)
    assert "test accuracy" in resumed.stdout


def test_a_checkpoint_that_changes_while_a_live_run_trains_is_not_called_damaged(
    folder_run, tmp_path, compile_cache
):
    """Evaluating beside the run training in the workdir: a checkpoint it replaced while being read
    is a reason to try again, not damage to move away."""
    from run_helpers import damage

    _, finished = folder_run
    workdir = shutil.copytree(finished, tmp_path / "run")
    latest = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    damage(workdir / "checkpoints" / str(latest), "empty array files")  # as if half replaced
    with WorkdirLock(workdir):  # this test process is the run training there
        line = refused(["--mode=eval", "--checkpoint=latest"], workdir, compile_cache, own_process=True)
    assert f"The checkpoint at step {latest}" in line and "changed while it was read" in line
    assert "try again" in line and "move that step" not in line


def test_evaluating_with_a_config_other_than_the_runs_says_to_leave_it_out(tmp_path):
    """The README's image-folder run is trained with overrides: its own config file differs."""
    from flax_resnets.config import default_config
    from flax_resnets.errors import InputError
    from flax_resnets.runs.workdir import config_dict
    from flax_resnets.training.evaluate import evaluate_workdir

    trained = default_config()
    trained.update(dataset="image_folder", data_dir=str(tmp_path / "images"))
    (tmp_path / "config.json").write_text(json.dumps(config_dict(trained)))
    message = "(dataset='image_folder' there, 'cifar10' now): leave out --config to evaluate the run"
    with pytest.raises(InputError, match=re.escape(message)):
        evaluate_workdir(default_config(), tmp_path)


def test_a_workdir_of_the_retired_tf_data_feed_is_read_evaluated_but_not_continued(tmp_path):
    """config.json of an earlier version holds input_pipeline: read without it (a run fed on the
    devices goes on as it was); a run that tf.data fed drew other crops, so it is not continued."""
    from flax_resnets.config import default_config
    from flax_resnets.errors import InputError
    from flax_resnets.runs.workdir import check_continuable, config_dict, recorded_config

    for pipeline in ("device", "tfdata"):
        workdir = tmp_path / pipeline
        (workdir / "checkpoints").mkdir(parents=True)
        (workdir / "config.json").write_text(
            json.dumps({**config_dict(default_config()), "input_pipeline": pipeline})
        )
        assert recorded_config(workdir) == config_dict(default_config())
    check_continuable(tmp_path / "device")
    with pytest.raises(InputError, match="holds a run fed by tf.data .* evaluate it \\(--mode=eval\\)"):
        check_continuable(tmp_path / "tfdata")


def test_a_config_that_sets_a_retired_field_is_refused_saying_why():
    from flax_resnets.checks import validate_config
    from flax_resnets.config import default_config
    from flax_resnets.errors import InputError

    config = default_config()
    config.input_pipeline = "device"
    with pytest.raises(
        InputError, match="config.input_pipeline is no longer needed: every run keeps its data"
    ):
        validate_config(config)
