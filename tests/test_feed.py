"""The feed: the dataset in device memory, batches made in the compiled step (gathered, augmented,
normalized), exact evaluation, training without TensorFlow."""

import functools
import itertools
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from run_helpers import REPO, environment

from flax_resnets.config import default_config
from flax_resnets.data.augment import PAD, pad_crop_flip, validation_draws
from flax_resnets.data.feeds import CallStep, Feed, example_key, require_room
from flax_resnets.data.images import model_inputs
from flax_resnets.data.order import check_batch_size, epoch_permutation, steps_per_epoch
from flax_resnets.data.sources import SAMPLE_FASHION_MNIST, load_dataset
from flax_resnets.errors import InputError
from flax_resnets.runtime import members, parallel
from flax_resnets.training.programs import train_call
from flax_resnets.training.steps import create_train_state, make_optimizer, train_step


@pytest.fixture(scope="module")
def sample():
    return load_dataset("image_folder", data_dir=str(SAMPLE_FASHION_MNIST))


def feed(dataset, *, augment, batch_size=32, eval_batch_size=96, seed=0, **settings):
    mesh = parallel.make_mesh(settings.get("num_seeds", 1))
    kwargs = dict(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed, augment=augment)
    return Feed(dataset, mesh, **kwargs, **settings)


def train_epoch(feed, epoch=0, steps=None, start_step=0):
    """The model's batches of one epoch from ``start_step`` (its first ``steps``), as the compiled
    step sees them (of a one-member feed)."""
    make_batch = jax.jit(feed.train_batch)
    step = epoch * steps_per_epoch(len(feed.dataset.train), feed.batch_size) + start_step
    batches = []
    for call_inputs, num_steps in feed.train_calls(epoch=epoch, start_step=start_step, steps_per_call=4):
        (inputs,) = members.split(call_inputs, 1)
        for index in range(num_steps):
            batch = make_batch(CallStep(inputs, feed.constants("train"), index, jnp.int32(step)))
            batches.append(jax.tree.map(np.asarray, batch))
            step += 1
            if len(batches) == steps:
                return batches
    return batches


def test_unaugmented_batches_are_the_epochs_examples_normalized(sample):
    plain = feed(sample, augment=False)
    order = epoch_permutation(len(sample.train), 0, 0)
    for step, batch in enumerate(train_epoch(plain, steps=3)):
        examples = order[step * 32 : (step + 1) * 32]
        assert batch["image"].shape == (32, 32, 32, 1) and batch["image"].dtype == np.float32
        np.testing.assert_array_equal(batch["label"], sample.train.labels[examples])
        expected = model_inputs(sample.train.images[examples], plain.normalization)
        np.testing.assert_allclose(batch["image"], expected, atol=1e-6)


def test_a_resumed_epoch_gives_the_rest_of_its_batches(sample):
    augmented = feed(sample, augment=True)
    whole, rest = (
        train_epoch(augmented, epoch=2, steps=6),
        train_epoch(augmented, epoch=2, steps=4, start_step=2),
    )
    for a, b in zip(whole[2:], rest, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])


def test_batch_sizes_that_cannot_be_shared_or_exceed_the_data_are_refused(sample):
    check_batch_size(16, process_count=2, local_device_count=4)
    with pytest.raises(InputError, match="batch_size=12 cannot be shared by 2 process.*multiple of 8"):
        check_batch_size(12, process_count=2, local_device_count=4)
    with pytest.raises(InputError, match="batch_size=0"):
        check_batch_size(0, process_count=1, local_device_count=1)
    with pytest.raises(InputError, match="larger than the 3200 training examples"):
        feed(sample, augment=False, batch_size=4096)


def test_a_dataset_too_large_for_a_devices_memory_is_refused_naming_both_sizes(sample):
    require_room(sample, lambda: None)  # a CPU says nothing of its memory: the host's is used
    require_room(sample, lambda: {"bytes_limit": 10**9})
    message = "the dataset takes 5 MB as uint8 and a device has 1 MB: it must fit in 50% of it"
    with pytest.raises(InputError, match=message):
        require_room(sample, lambda: {"bytes_limit": 10**6})


def test_augmentation_changes_pixels_never_labels_and_is_seeded(sample):
    plain = feed(sample, augment=False)
    augmented = feed(sample, augment=True)
    for a, p in zip(train_epoch(augmented, steps=3), train_epoch(plain, steps=3), strict=True):
        np.testing.assert_array_equal(a["label"], p["label"])
        assert not np.allclose(a["image"], p["image"])
    again = train_epoch(feed(sample, augment=True), steps=3)
    other_epoch = train_epoch(augmented, epoch=1, steps=3)
    np.testing.assert_array_equal(again[0]["image"], train_epoch(augmented, steps=1)[0]["image"])
    assert not np.array_equal(other_epoch[0]["image"], again[0]["image"])


def test_an_epoch_visits_every_training_example_once(sample):
    device = feed(sample, augment=False)
    calls = list(device.train_calls(epoch=3, start_step=0, steps_per_call=7))  # 100 steps: 14 x 7 + 2
    assert [num_steps for _, num_steps in calls] == [7] * 14 + [2]
    assert all(inputs is calls[0][0] for inputs, _ in calls)  # sent to the devices once per epoch
    indices = np.asarray(calls[0][0]["order"]).ravel()
    assert len(indices) == len(sample.train) == 3200
    assert sorted(indices.tolist()) == list(range(3200))


@pytest.mark.slow
def test_training_from_the_epoch_order_takes_the_steps_that_per_step_indices_took(sample):
    """Calls carry nothing but the epoch's order; each step finds its examples and its random
    draws from the state's step. The loop before sent each step's example indices and draw keys:
    the parameters after 6 steps in 2 scanned calls must be that loop's (unrolled calls take the
    scanned calls' steps: test_members.py). In float64, so that float32 rounding cannot flip a ReLU
    between the two compilations and hide a real difference."""
    the_feed = feed(sample, augment=True, batch_size=8)
    config = default_config(dataset="image_folder", model="resnet8")
    config.update(learning_rate=0.05, dtype="float64")
    order = epoch_permutation(len(sample.train), the_feed.seed, 0)[:48].reshape(6, 8)
    constants = the_feed.constants("train")

    def per_step_batch(step):
        draws = np.stack([np.zeros(8), np.full(8, step), np.arange(8)], axis=1).astype(np.int32)
        keys = jax.vmap(lambda draw: example_key(the_feed.seed, draw))(draws)
        images = jax.vmap(pad_crop_flip)(constants["images"][order[step]], keys)
        return {"image": the_feed.normalize(images), "label": constants["labels"][order[step]]}

    with jax.enable_x64(True):
        optimizer, _ = make_optimizer(config, total_steps=100)
        graphdef, start = create_train_state(config, num_classes=10, input_channels=1, optimizer=optimizer)
        (start,) = members.split(start, 1)
        start = jax.tree.map(lambda x: x.astype(jnp.float64) if x.dtype == jnp.float32 else x, start)
        one_step = jax.jit(functools.partial(train_step, graphdef, optimizer))
        expected = start
        for step in range(6):
            expected = one_step(expected, per_step_batch(step))

        scanned = functools.partial(train_call, the_feed, graphdef, optimizer, config, False)
        train = jax.jit(scanned, static_argnums=3)
        state = members.join([start])
        calls = the_feed.train_calls(epoch=0, start_step=0, steps_per_call=3)
        for inputs, num_steps in itertools.islice(calls, 2):
            state = train(state, inputs, constants, num_steps)
        (state,) = members.split(state, 1)
        assert int(state.step) == 6
        # Only the float32 images' rounding differs (normalized inside or outside the step): a
        # few parameters near zero move by up to 1e-8; another crop, flip or row moves them by 1e-3.
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), state.params, expected.params
        )


def evaluation_batches(the_feed, split, epoch=0):
    """The model's batches of ``split`` as the compiled evaluation step sees them (each member's)."""
    make_batch = jax.jit(members.over_members(the_feed.eval_batch, the_feed.num_seeds, in_axes=(0, None)))
    if not the_feed.augments(split):
        make_batch = jax.jit(the_feed.eval_batch)
    constants = the_feed.constants(split)
    return [
        jax.tree.map(np.asarray, make_batch(inputs, constants))
        for inputs in the_feed.eval_inputs(split, epoch)
    ]


def test_evaluation_covers_every_example_exactly_once_in_order_normalized(sample):
    plain = feed(sample, augment=False)
    batches = evaluation_batches(plain, "validation")
    assert [int(b["mask"].sum()) for b in batches] == [96] * 8 + [32]
    labels = np.concatenate([b["label"][b["mask"]] for b in batches])
    np.testing.assert_array_equal(labels, sample.validation.labels)
    images = np.concatenate([b["image"][b["mask"]] for b in batches])
    np.testing.assert_allclose(images, model_inputs(sample.validation.images, plain.normalization), atol=1e-6)


def numpy_pad_crop_flip(image, offset, flip, pad_value):
    padded = np.pad(image, ((PAD, PAD), (PAD, PAD), (0, 0)), constant_values=pad_value)
    window = padded[offset[0] : offset[0] + image.shape[0], offset[1] : offset[1] + image.shape[1]]
    return window[:, ::-1] if flip else window


@pytest.mark.parametrize("pad_after_normalization", [False, True], ids=["black", "grey"])
def test_augmented_validation_images_are_each_members_own_crops_of_its_seed_and_epoch(
    sample, pad_after_normalization
):
    """The paper's validation images are cropped and flipped afresh every epoch, as drawn from the
    seed and epoch alone, each member its own way (member k as the one-seed run of seed + k),
    padded with black (before normalising) or with 0 (after); test images are never augmented."""
    settings = dict(seed=3, augment_validation=True, pad_after_normalization=pad_after_normalization)
    two = feed(sample, augment=True, num_seeds=2, **settings)
    images = np.concatenate([b["image"] for b in evaluation_batches(two, "validation")], axis=1)
    images = images[:, : len(sample.validation)]  # (members, images, ...)
    normalized = model_inputs(sample.validation.images, two.normalization)
    black = float(model_inputs(np.zeros(1, np.uint8), two.normalization)[0])  # one channel
    for member, seed in enumerate((3, 4)):
        offsets, flips = validation_draws(len(sample.validation), seed, 0)
        for k in range(0, len(sample.validation), 97):
            if pad_after_normalization:
                expected = numpy_pad_crop_flip(normalized[k], offsets[k], flips[k], 0.0)
            else:
                expected = numpy_pad_crop_flip(normalized[k], offsets[k], flips[k], black)
            np.testing.assert_allclose(images[member, k], expected, atol=1e-6)
    later = np.concatenate([b["image"] for b in evaluation_batches(two, "validation", epoch=1)], axis=1)
    assert not np.allclose(images[0], images[1]) and not np.allclose(
        later[0, : len(sample.validation)], images[0]
    )
    alone = feed(sample, augment=True, **{**settings, "seed": 4})
    member = np.concatenate([b["image"][b["mask"]] for b in evaluation_batches(alone, "validation")])
    np.testing.assert_array_equal(member, images[1])
    tests = np.concatenate([b["image"][b["mask"]] for b in evaluation_batches(alone, "test")])
    np.testing.assert_allclose(tests, model_inputs(sample.test.images, alone.normalization), atol=1e-6)


@pytest.fixture(scope="module")
def exported_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "fashion_mnist_sample.npz"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "flax_resnets",
            "data",
            "export",
            "--dataset=image_folder",
            f"--data_dir={SAMPLE_FASHION_MNIST}",
            f"--out={out}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out


def test_exported_file_holds_the_same_dataset(sample, exported_sample):
    exported = load_dataset("image_folder", data_dir=str(exported_sample))
    np.testing.assert_array_equal(exported.train.images, sample.train.images)
    np.testing.assert_array_equal(exported.validation.labels, sample.validation.labels)
    np.testing.assert_array_equal(exported.test.images, sample.test.images)
    assert (exported.class_names, exported.mean, exported.std) == (
        sample.class_names,
        sample.mean,
        sample.std,
    )


def test_an_exported_file_is_read_whatever_the_case_of_its_suffix(sample, exported_sample, tmp_path):
    shouted = tmp_path / "SAMPLE.NPZ"
    shouted.write_bytes(exported_sample.read_bytes())
    read = load_dataset("image_folder", data_dir=str(shouted))
    np.testing.assert_array_equal(read.test.images, sample.test.images)


def test_exported_file_of_another_dataset_or_missing_is_refused(exported_sample, tmp_path):
    with pytest.raises(InputError, match="holds 'image_folder', not 'cifar10'"):
        load_dataset("cifar10", data_dir=str(exported_sample))
    with pytest.raises(InputError, match="export it first"):
        load_dataset("cifar10", data_dir=str(tmp_path / "missing.npz"))


@pytest.mark.slow
def test_train_and_evaluate_without_tensorflow_from_an_exported_file(
    exported_sample, tmp_path, compile_cache
):
    # TensorFlow and TFDS made unimportable, as on the GPU machines that lack them.
    code = (
        "import runpy, sys\n"
        "sys.modules['tensorflow'] = None; sys.modules['tensorflow_datasets'] = None\n"
        "sys.argv = ['main.py', *sys.argv[1:]]\n"
        "runpy.run_path('main.py', run_name='__main__')\n"
    )
    args = [
        "--config=configs/quickstart.py",
        f"--config.data_dir={exported_sample}",
        "--config.num_epochs=1",
        f"--workdir={tmp_path / 'run'}",
    ]
    env = environment(compile_cache)  # the evaluation reuses the training's compiled test step
    trained = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "test accuracy" in trained.stdout
    evaluated = subprocess.run(
        [sys.executable, "-c", code, f"--workdir={tmp_path / 'run'}", "--mode=eval"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert evaluated.stdout.splitlines()[-1] == trained.stdout.splitlines()[-1]
