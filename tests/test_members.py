"""Several seeds as one program (config.num_seeds): member k is the one-seed run of seed + k."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import write_image_folder
from run_helpers import (
    TINY,
    assert_same_run,
    damage,
    run_main,
    run_with_fault,
)

from flax_resnets.config import default_config
from flax_resnets.data.feeds import CallStep, Feed
from flax_resnets.data.order import check_batch_size, steps_per_epoch
from flax_resnets.data.sources import SAMPLE_FASHION_MNIST, load_dataset
from flax_resnets.errors import InputError
from flax_resnets.runs.metrics import read_jsonl
from flax_resnets.runtime import members, parallel
from flax_resnets.training.checkpoints import Checkpoints
from flax_resnets.training.evaluate import choose_steps
from flax_resnets.training.programs import train_call
from flax_resnets.training.steps import create_train_state, make_optimizer


@pytest.fixture(scope="module")
def sample():
    return load_dataset("image_folder", data_dir=str(SAMPLE_FASHION_MNIST))


def tiny_config(**fields):
    config = default_config(dataset="image_folder", model="resnet8")
    config.update(learning_rate=0.05, batch_size=8, **fields)
    return config


def test_member_k_starts_from_the_parameters_of_the_one_seed_run_of_seed_k():
    config = tiny_config(seed=5, num_seeds=3)
    optimizer, _ = make_optimizer(config, total_steps=10)
    _, joined = create_train_state(config, num_classes=10, input_channels=1, optimizer=optimizer)
    assert joined.params["head"]["kernel"][...].shape[0] == 3
    for k, member in enumerate(members.split(joined, 3)):
        alone = tiny_config(seed=5 + k)
        _, expected = create_train_state(alone, num_classes=10, input_channels=1, optimizer=optimizer)
        jax.tree.map(np.testing.assert_array_equal, member, *members.split(expected, 1))
    first, second = members.split(joined.params, 3)[:2]
    assert not np.array_equal(first["head"]["kernel"][...], second["head"]["kernel"][...])


def test_member_k_sees_the_batches_of_the_one_seed_run_of_seed_k(sample):
    settings = dict(batch_size=16, eval_batch_size=64, augment=True)
    step = jnp.int32(steps_per_epoch(len(sample.train), 16) + 1)  # epoch 1's second step

    def member_batches(seed, num_seeds):
        feed = Feed(sample, parallel.make_mesh(num_seeds), seed=seed, num_seeds=num_seeds, **settings)
        batch_of = lambda *call: feed.train_batch(CallStep(*call))  # noqa: E731
        make_batch = jax.jit(members.over_members(batch_of, num_seeds, in_axes=(0, None, None, None)))
        inputs, num_steps = next(feed.train_calls(epoch=1, start_step=0, steps_per_call=2))
        assert num_steps == 2
        return members.split(jax.device_get(make_batch(inputs, feed.constants("train"), 1, step)), num_seeds)

    batches = member_batches(2, 3)
    for k, batch in enumerate(batches):
        jax.tree.map(np.testing.assert_array_equal, batch, *member_batches(2 + k, 1))
    assert not np.array_equal(batches[0]["label"], batches[1]["label"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "unroll, model",
    [(False, "resnet8"), (True, "resnet8"), (False, "vgg8")],
    ids=["vmap", "unrolled", "dropout"],
)
def test_members_train_exactly_as_their_one_seed_runs(sample, unroll, model):
    """Two steps of two members (vectorized, or one after the other in one program) against the
    second member's seed trained alone, in float64 so that float32 rounding cannot hide a member
    that shares another's statistics, batches or dropout masks (members that shared them, or swapped
    them, would both differ from their seeds alone; every member's start and batches: above)."""
    mesh = parallel.make_mesh(2)
    config = tiny_config(seed=7, num_seeds=2, dtype="float64", model=model)

    def trained(config, seed, num_seeds):
        feed = Feed(sample, mesh, batch_size=8, eval_batch_size=8, seed=seed, augment=True,
                          num_seeds=num_seeds)  # fmt: skip
        optimizer, _ = make_optimizer(config, total_steps=100)
        graphdef, state = create_train_state(config, num_classes=10, input_channels=1, optimizer=optimizer)
        state = jax.tree.map(lambda x: x.astype(jnp.float64) if x.dtype == jnp.float32 else x, state)
        call = functools.partial(train_call, feed, graphdef, optimizer, config, unroll)
        inputs, _ = next(feed.train_calls(epoch=0, start_step=0, steps_per_call=2))
        return jax.jit(call, static_argnums=3)(state, inputs, feed.constants("train"), 2)

    with jax.enable_x64(True):
        together = members.split(trained(config, 7, 2), 2)
        alone = trained(tiny_config(seed=8, dtype="float64", model=model), 8, 1)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12),
            together[1],
            *members.split(alone, 1),
        )
    assert int(together[0].step) == 2


@pytest.mark.parametrize(
    ("num_seeds", "processes", "local_devices", "shape"),
    [(8, 1, 8, (8, 1)), (4, 1, 8, (4, 2)), (3, 1, 8, (1, 8)), (2, 1, 1, (1, 1)), (4, 2, 4, (1, 8))],
)
def test_seeds_take_the_devices_that_divide_them_and_the_batch_the_rest(
    num_seeds, processes, local_devices, shape
):
    assert parallel.mesh_shape(num_seeds, processes, local_devices) == shape


def test_the_batch_must_split_over_the_data_axis_only():
    check_batch_size(2, process_count=1, local_device_count=8, num_seeds=4)  # 4 x 2: one image each
    check_batch_size(1, process_count=1, local_device_count=8, num_seeds=8)  # a member per device
    with pytest.raises(InputError, match="8 device.*4 seeds on 4 of them: use a positive multiple of 2"):
        check_batch_size(3, process_count=1, local_device_count=8, num_seeds=4)
    with pytest.raises(InputError, match="multiple of 8"):
        check_batch_size(4, process_count=1, local_device_count=8, num_seeds=3)


def test_each_member_keeps_its_own_best_checkpoint(tmp_path):
    """The policy keeps, and ``choose_steps`` names, each member's best: the earliest of ties (step 3
    ties both members' bests; a policy that kept the latest of ties would keep 3 and lose 1 and 2)."""
    accuracies = {1: [0.9, 0.1], 2: [0.2, 0.8], 3: [0.9, 0.8], 4: [0.4, 0.4]}
    history = [
        {"step": step, "val_accuracy": sum(values) / 2, "seeds": [{"val_accuracy": a} for a in values]}
        for step, values in accuracies.items()
    ]
    with Checkpoints(tmp_path / "checkpoints", keep=1, num_seeds=2) as checkpoints:
        for step in accuracies:
            checkpoints.save(step, {"x": jnp.ones(2)}, history[:step])
            checkpoints.wait()
        assert checkpoints.steps() == [1, 2, 4]  # each member's best, and the latest
        assert choose_steps(checkpoints, "best", num_seeds=2) == [1, 2]


# 24 images in batches of 8: 3 steps per epoch, 9 in all; a checkpoint after every step.
RUN = [*TINY, "--config.num_epochs=3", "--config.checkpoint_every_steps=1", "--config.keep_checkpoints=20"]


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory, compile_cache):
    root = tmp_path_factory.mktemp("two_seeds")
    images = write_image_folder(root / "images")
    args = [*RUN, "--config.dataset=image_folder", f"--config.data_dir={images}"]
    run_main([*args, "--config.num_seeds=2", f"--workdir={root / 'run'}"], compile_cache)
    return args, root / "run"


@pytest.mark.slow
def test_each_member_of_a_two_seed_run_is_the_one_seed_run_of_its_seed(tmp_path, compile_cache, two_seeds):
    args, workdir = two_seeds
    report = json.loads((workdir / "eval.json").read_text())
    records = read_jsonl(workdir / "metrics.jsonl")
    assert [member["seed"] for member in report["seeds"]] == [0, 1]
    accuracies = [member["test_accuracy"] for member in report["seeds"]]
    assert report["test_accuracy"] == pytest.approx(np.mean(accuracies))
    assert report["test_accuracy_std"] == pytest.approx(np.std(accuracies, ddof=1))
    assert np.sum(report["confusion"]) == 2 * report["num_examples"]
    for k, member in enumerate(report["seeds"]):  # each member tested at its own best checkpoint
        best = max(records, key=lambda r, k=k: (r["seeds"][k]["val_accuracy"], -r["step"]))  # earliest tie
        assert member["checkpoint_step"] == best["step"]
    assert report["checkpoint_step"] == [member["checkpoint_step"] for member in report["seeds"]]
    assert records[0]["train_loss"] == pytest.approx(np.mean([m["train_loss"] for m in records[0]["seeds"]]))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summaries = EventAccumulator(str(workdir / "tensorboard")).Reload()
    tags = summaries.Tags()["scalars"]
    assert {"train_loss", "seed0/train_loss", "seed1/val_accuracy"} <= set(tags)
    assert [e.value for e in summaries.Scalars("seed1/val_accuracy")] == pytest.approx(
        [r["seeds"][1]["val_accuracy"] for r in records]
    )

    # Member 1 against seed 1 trained alone, end to end (both members, step by step: above).
    alone = tmp_path / "seed1"
    run_main([*args, "--config.seed=1", f"--workdir={alone}"], compile_cache)
    for together, by_itself in zip(records, read_jsonl(alone / "metrics.jsonl"), strict=True):
        for field in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert together["seeds"][1][field] == pytest.approx(by_itself[field], rel=1e-4, abs=1e-6)
    alone_report = json.loads((alone / "eval.json").read_text())
    assert report["seeds"][1]["test_accuracy"] == pytest.approx(alone_report["test_accuracy"], abs=0.1)

    evaluated = run_main([f"--workdir={workdir}", "--mode=eval"], compile_cache)
    assert "test accuracy" in evaluated.stdout
    assert json.loads((workdir / "eval.json").read_text()) == report


@pytest.mark.slow
def test_two_seeds_stop_resume_and_recover_from_damage_as_one_seed_does(tmp_path, compile_cache, two_seeds):
    args, reference = two_seeds
    workdir = tmp_path / "run"
    args = [*args, "--config.num_seeds=2", f"--workdir={workdir}"]
    stopped = run_with_fault(args, compile_cache, "save:4", "TERM")  # a scheduler's notice mid-run
    assert "Stopped at step" in stopped.stderr.strip().splitlines()[-1]
    assert "Resuming" in run_main(args, compile_cache).stdout
    assert_same_run(workdir, reference)

    damage(workdir / "checkpoints" / "9", "truncated array files")
    resumed = run_main(args, compile_cache)
    assert "from step 8" in resumed.stdout and "cannot be read" in resumed.stderr
    assert_same_run(workdir, reference)
