"""End to end through main.py: train, evaluate, resume after a kill, devices, refused input."""

import json
import os
import shutil
import stat

import jax
import numpy as np
import pytest
from conftest import write_image_folder
from run_helpers import (
    TINY,
    approx_numbers,
    run_main,
    saved_state,
    trained_here,
    tree_fingerprint,
    without_timing,
)

from flax_resnets.runs.metrics import read_jsonl


@pytest.mark.slow
def test_train_two_epochs_then_eval_mode_reproduces_eval_json(tmp_path, compile_cache):
    workdir = tmp_path / "run"
    args = [*TINY, "--config.dataset=cifar10", "--config.download=False", f"--workdir={workdir}"]
    trained = run_main(args, compile_cache, mock_examples=40)
    assert "test accuracy" in trained.stdout.splitlines()[-1]

    records = read_jsonl(workdir / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2] and [r["step"] for r in records] == [4, 8]
    for record in records:
        assert set(record) >= {
            "train_loss",
            "train_accuracy",
            "val_loss",
            "val_accuracy",
            "learning_rate",
            "seconds",
            "images_per_second",
        }
    # The paper's CosineAnnealingLR(T_max=50) stepped per epoch: epoch 2 trains at its second value.
    assert [r["learning_rate"] for r in records] == pytest.approx([0.05, 0.05 * (1 + np.cos(np.pi / 50)) / 2])
    assert json.loads((workdir / "config.json").read_text())["model"] == "resnet8"
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    run_record = json.loads((workdir / "run.json").read_text())
    assert run_record["epochs"] == 2 and run_record["data"]["test"] == 40 and run_record["device"]
    assert run_record["wall_seconds"] == pytest.approx(sum(r["seconds"] for r in records))
    for plot in ("curves.png", "confusion.png"):
        assert (workdir / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Files of a run are readable by the others who share its folder, as open() would make them.
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "metrics.jsonl", "eval.json", "run.json", "curves.png"):
        assert stat.S_IMODE((workdir / name).stat().st_mode) == 0o666 & ~umask, name

    at_training_end = json.loads((workdir / "eval.json").read_text())
    assert at_training_end["num_examples"] == 40 and at_training_end["dataset"] == "cifar10"
    confusion = np.array(at_training_end["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 40
    assert np.trace(confusion) == round(at_training_end["test_accuracy"] * 40)
    best = max(records, key=lambda r: (r["val_accuracy"], -r["step"]))["step"]  # the earliest of ties
    assert at_training_end["checkpoint_step"] == best
    val_accuracy = next(r["val_accuracy"] for r in records if r["step"] == best)
    marked = {"seeds": [{"seed": 0, "step": best, "val_accuracy": val_accuracy}]}
    assert json.loads((workdir / "checkpoints" / "best.json").read_text()) == marked
    (workdir / "checkpoints" / "best.json").unlink()  # evaluating writes it again

    for stale in ("eval.json", "confusion.png"):
        (workdir / stale).unlink()
    evaluated = trained_here([f"--workdir={workdir}", "--mode=eval"], mock_examples=40)  # in this process
    assert json.loads((workdir / "eval.json").read_text()) == at_training_end
    assert json.loads((workdir / "checkpoints" / "best.json").read_text()) == marked
    assert evaluated.stdout.splitlines()[-1].endswith(f"(checkpoint at step {best})")
    assert (workdir / "confusion.png").exists()

    # Another checkpoint than the best is written beside eval.json, never over it.
    other = 4 if best == 8 else 8
    evaluate_other = [f"--workdir={workdir}", "--mode=eval", f"--checkpoint={other}"]
    trained_here(evaluate_other, mock_examples=40)
    assert json.loads((workdir / f"eval_step{other}.json").read_text())["checkpoint_step"] == other
    assert json.loads((workdir / "eval.json").read_text()) == at_training_end

    (workdir / "curves.png").unlink()
    from flax_resnets.commands import reports

    assert reports.main(["--plots", str(workdir)]) == 0 and (workdir / "curves.png").exists()


@pytest.mark.slow
def test_one_and_eight_devices_take_the_same_step(tmp_path, compile_cache, image_folder):
    """24 training images, a batch of 24: exactly one step of two seeds, on one device or on eight
    (a 2 x 4 mesh: each member on 4 devices, its batch split 4 ways)."""
    args = [
        *TINY,
        "--config.dataset=image_folder",
        f"--config.data_dir={image_folder}",
        "--config.batch_size=24",
        "--config.num_epochs=1",
        "--config.num_seeds=2",
    ]
    trained_here([*args, f"--workdir={tmp_path / 'one'}"])  # this process has one device
    eight = run_main([*args, f"--workdir={tmp_path / 'eight'}"], compile_cache, devices=8)
    assert "step 1 (mean of 2 seeds):" in eight.stdout
    one_state, eight_state = saved_state(tmp_path / "one"), saved_state(tmp_path / "eight")
    assert not np.allclose(one_state["params"]["head"]["kernel"]["value"], 0)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6), one_state, eight_state)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("finished") / "run"
    args = [*TINY, "--config.dataset=cifar10", "--config.download=False", "--config.num_epochs=1"]
    trained_here([*args, f"--workdir={workdir}"], mock_examples=20)
    return workdir


@pytest.mark.parametrize(
    "overrides, devices, message",
    [
        (["--config.model=resnet19"], 1, "Unknown model(s) resnet19"),
        (["--config.dataset=mnist"], 1, "Unknown dataset 'mnist'"),
        (["--config.batch_size=12"], 8, "batch_size=12 cannot be shared by 1 process(es) with 8 device(s)"),
        (["--config.learning_rate=0.0"], 1, "config.learning_rate must be positive"),
        (["--config.num_epochs=0"], 1, "config.num_epochs must be positive"),
        (["--config.num_epochs=5"], 1, "holds a run of a different config (num_epochs=1 there, 5 now)"),
        (
            ["--config.data_dir=/nonexistent", "--config.dataset=image_folder"],
            1,
            "holds a run of a different",
        ),
        (
            ["--config.input_pipeline=device"],
            1,
            "--config.input_pipeline is no longer needed: every run keeps",
        ),
        (["--config.learnig_rate=0.1"], 1, "no field 'learnig_rate'; did you mean learning_rate?"),
        (["--config.batch_size=abc"], 1, "--config.batch_size=abc: 'abc' is not a valid int"),
        (["--config=configs/nope.py"], 1, "--config=configs/nope.py: there is no such file"),
        (["--config=README.md"], 1, "--config=README.md is not a config file"),
        (["--bogus=1"], 1, "unrecognized arguments: --bogus=1"),
        (["--mode=eval", "--checkpoint=soon"], 1, "--checkpoint must be 'best', 'latest' or a step number"),
        (["--mode=eval", "--checkpoint=7"], 1, "There is no checkpoint at step 7"),
        (["--config.seed=-1"], 1, "config.seed must be 0 or more"),
        (["--config.learning_rate=inf"], 1, "'inf' is not a valid float for config.learning_rate"),
        (["--config.weight_decay=nan"], 1, "'nan' is not a valid float for config.weight_decay"),
        (["--config.seed=2147483648"], 1, "must be below 2**31 = 2147483648, got seed=2147483648"),
        (["--config.seed=2147483647", "--config.num_seeds=2"], 1, "must be below 2**31"),
        (["--mode=eval", "--checkpoint=²"], 1, "--checkpoint must be 'best', 'latest' or a step number"),
    ],
)
def test_refused_input_exits_2_with_one_line_and_leaves_the_workdir_alone(
    finished_run, compile_cache, overrides, devices, message
):
    before = tree_fingerprint(finished_run)
    args = [
        *TINY,
        "--config.dataset=cifar10",
        "--config.download=False",
        "--config.num_epochs=1",
        *overrides,
        f"--workdir={finished_run}",
    ]
    result = run_main(args, compile_cache, devices=devices, expect=2)
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], result.stderr[-2000:]
    assert tree_fingerprint(finished_run) == before


def untrainable_folder(tmp_path, case):
    """An image folder that cannot make a run, and the overrides that go with it."""
    if case == "one class":
        return write_image_folder(tmp_path / "images", classes=1), []
    images = write_image_folder(tmp_path / "images")
    if case == "no test images":
        for image in (images / "test").rglob("*.png"):
            image.unlink()
        return images, []
    return images, ["--config.validation_fraction=0.999"]


@pytest.mark.parametrize(
    "case, message",
    [
        ("one class", "has 1 class: a classifier needs at least 2"),
        ("no test images", "The test split of 'image_folder' is empty"),
        ("no training images", "validation_fraction=0.999 leaves no training images of 30: lower it"),
    ],
)
def test_data_that_cannot_make_a_run_is_refused_before_anything_is_written(
    tmp_path, compile_cache, case, message
):
    images, overrides = untrainable_folder(tmp_path, case)
    workdir = tmp_path / "never"
    data = ["--config.dataset=image_folder", f"--config.data_dir={images}"]
    result = run_main([*TINY, *data, *overrides, f"--workdir={workdir}"], compile_cache, expect=2)
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], result.stderr[-2000:]
    assert not workdir.exists()


def test_a_workdir_inside_a_file_is_refused_as_such(tmp_path, compile_cache):
    (tmp_path / "notes.txt").write_text("mine")
    result = run_main([*TINY, f"--workdir={tmp_path / 'notes.txt' / 'run'}"], compile_cache, expect=2)
    assert f"{tmp_path / 'notes.txt'} is a file, not a folder" in result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_the_command_of_a_finished_run_run_again_keeps_its_record(finished_run, tmp_path, compile_cache):
    """run.json is the record of the machine that trained: testing the run again elsewhere (what
    the same command does once every epoch is done) leaves it, and the results, as they were."""
    workdir = shutil.copytree(finished_run, tmp_path / "run")
    record = json.loads((workdir / "run.json").read_text())
    record["device"] = "the machine that trained"
    (workdir / "run.json").write_text(json.dumps(record))
    before = {name: (workdir / name).read_bytes() for name in ("run.json", "metrics.jsonl")}
    report = json.loads((workdir / "eval.json").read_text())
    args = [*TINY, "--config.dataset=cifar10", "--config.download=False", "--config.num_epochs=1"]
    run_main([*args, f"--workdir={workdir}"], compile_cache, mock_examples=20)
    assert {name: (workdir / name).read_bytes() for name in before} == before
    assert json.loads((workdir / "eval.json").read_text()) == report


def test_missing_offline_data_is_refused_before_the_workdir_is_made(tmp_path, compile_cache):
    workdir = tmp_path / "never"
    args = [
        *TINY,
        "--config.dataset=cifar10",
        "--config.download=False",
        f"--config.data_dir={tmp_path}",
        f"--workdir={workdir}",
    ]
    result = run_main(args, compile_cache, expect=2)
    assert "not prepared" in result.stderr.strip().splitlines()[-1]
    assert not workdir.exists()


def test_a_workdir_that_is_a_file_or_missing_is_refused(tmp_path, compile_cache):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("mine")
    result = run_main([*TINY, f"--workdir={not_a_folder}"], compile_cache, expect=2)
    assert result.stderr.strip().splitlines() == [
        f"error: {not_a_folder} is a file, not a folder to write into: pass a folder for the run (--workdir)."
    ]
    assert not_a_folder.read_text() == "mine"
    result = run_main(TINY, compile_cache, expect=2)
    assert result.stderr.strip().splitlines()[-1].startswith("error: --workdir is required")


def test_eval_of_a_workdir_without_a_run_is_refused(tmp_path, compile_cache):
    result = run_main([f"--workdir={tmp_path}", "--mode=eval"], compile_cache, expect=2)
    assert "holds no run" in result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_diverging_loss_stops_training_and_keeps_only_finite_checkpoints(tmp_path, compile_cache):
    workdir = tmp_path / "diverged"
    args = [
        *TINY,
        "--config.dataset=cifar10",
        "--config.download=False",
        "--config.learning_rate=1e12",
        "--config.checkpoint_every_steps=1",
        f"--workdir={workdir}",
    ]
    result = run_main(args, compile_cache, mock_examples=40, expect=1)
    line = result.stderr.strip().splitlines()[-1]
    assert "NaN or infinite" in line and "lower the learning rate" in line
    assert "float32" not in line  # the run is in float32 already
    saved = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert (f"the checkpoint of step {saved[-1]} is kept" if saved else "no checkpoint was saved") in line
    assert not (workdir / "eval.json").exists()
    for step_dir in (workdir / "checkpoints").iterdir():
        if step_dir.name.isdigit():
            leaves = jax.tree.leaves(saved_state(workdir, int(step_dir.name)))
            assert all(np.isfinite(np.asarray(leaf)).all() for leaf in leaves)


@pytest.mark.slow
def test_fused_steps_per_call_give_the_same_run_as_one_step_per_call(tmp_path, image_folder):
    from configs import default
    from flax_resnets.training.loop import train_and_evaluate

    def run(steps_per_call):
        config = default.get_config(dataset="image_folder", model="resnet8")
        config.update(data_dir=str(image_folder), batch_size=4, num_epochs=2, learning_rate=0.05)
        config.update(steps_per_call=steps_per_call)
        config.update(checkpoint_every_steps=3, keep_checkpoints=10)
        workdir = tmp_path / f"steps_{steps_per_call}"
        return train_and_evaluate(config, workdir), workdir

    # 24 training images in batches of 4: 6 steps per epoch, so calls of 4 steps leave a call of 2.
    (one_result, one), (fused_result, fused) = run(1), run(4)
    # Equal up to float rounding: XLA fuses the unrolled steps of one call a little differently.
    assert fused_result == approx_numbers(one_result, rel=1e-5)
    fused_records = without_timing(read_jsonl(fused / "metrics.jsonl"))
    one_records = without_timing(read_jsonl(one / "metrics.jsonl"))
    assert fused_records == [approx_numbers(r, rel=1e-5) for r in one_records]
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        saved_state(one),
        saved_state(fused),
    )
    # Mid-epoch checkpoints come at the end of the call that reaches a multiple of 3 steps.
    assert checkpoint_steps(one) == {3, 6, 9, 12} and checkpoint_steps(fused) == {4, 6, 10, 12}


def checkpoint_steps(workdir):
    return {int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()}


@pytest.mark.slow
def test_the_fast_recipe_trains_at_tiny_scale(tmp_path, image_folder):
    """configs/cifar10_fast.py (one-cycle, Nesterov, label smoothing, bfloat16, device data, no
    validation split, flipped evaluation) on a tiny model and folder: the whole path runs."""
    from configs import cifar10_fast
    from flax_resnets.training.loop import train_and_evaluate

    config = cifar10_fast.get_config()
    config.update(dataset="image_folder", data_dir=str(image_folder), model="resnet8")
    config.update(batch_size=6, num_epochs=3, warmup_epochs=1.0, eval_batch_size=16)
    result = train_and_evaluate(config, tmp_path / "fast")
    records = read_jsonl(tmp_path / "fast" / "metrics.jsonl")
    assert [r["val_accuracy"] for r in records] == [None] * 3  # every training image is trained on
    # 5 steps per epoch: up to 0.4 over the first 5 steps, down to 0 over the other 10; each epoch
    # records the rate its last step (4, 9, 14) trained at.
    assert [r["learning_rate"] for r in records] == pytest.approx([0.32, 0.24, 0.04])
    assert result["num_examples"] == 12 and result["checkpoint_step"] == 15
