"""Data in device memory: the same batches as tf.data, exact evaluation, training without TensorFlow."""

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
from flax_resnets.data.augment import pad_crop_flip
from flax_resnets.data.device import DeviceFeed, example_key
from flax_resnets.data.feeds import CallStep
from flax_resnets.data.order import epoch_permutation, steps_per_epoch
from flax_resnets.data.sources import SAMPLE_FASHION_MNIST, load_dataset
from flax_resnets.data.tfdata import TfDataFeed
from flax_resnets.errors import InputError
from flax_resnets.runtime import members, parallel
from flax_resnets.training.steps import create_train_state, make_optimizer, train_step, train_steps


@pytest.fixture(scope="module")
def sample():
    return load_dataset("image_folder", data_dir=str(SAMPLE_FASHION_MNIST))


def feeds(dataset, *, augment, batch_size=32, eval_batch_size=96, seed=0):
    mesh = parallel.make_mesh()
    kwargs = dict(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed, augment=augment)
    return TfDataFeed(dataset, mesh, **kwargs), DeviceFeed(dataset, mesh, **kwargs)


def train_epoch(feed, epoch=0, steps=None):
    """The model's batches of one epoch (its first ``steps``), as the compiled step sees them."""
    make_batch = jax.jit(feed.train_batch)
    step = epoch * steps_per_epoch(len(feed.dataset.train), feed.batch_size)
    batches = []
    for inputs, num_steps in feed.train_calls(epoch=epoch, start_step=0, steps_per_call=4):
        for index in range(num_steps):
            batch = make_batch(CallStep(inputs, feed.constants("train"), index, jnp.int32(step)))
            batches.append(jax.tree.map(np.asarray, batch))
            step += 1
            if len(batches) == steps:
                return batches
    return batches


def test_same_examples_in_the_same_batches_as_tf_data(sample):
    tfdata, device = feeds(sample, augment=False)
    for host, on_device in zip(train_epoch(tfdata, steps=5), train_epoch(device, steps=5), strict=True):
        assert on_device["image"].shape == host["image"].shape == (32, 32, 32, 1)
        assert on_device["image"].dtype == host["image"].dtype == np.float32
        np.testing.assert_array_equal(on_device["label"], host["label"])
        np.testing.assert_allclose(on_device["image"], host["image"], atol=1e-5)


def test_augmented_batches_match_tf_data_in_distribution(sample):
    tfdata, device = feeds(sample, augment=True)
    host, on_device = train_epoch(tfdata, steps=20), train_epoch(device, steps=20)
    host_pixels = np.concatenate([b["image"] for b in host])
    device_pixels = np.concatenate([b["image"] for b in on_device])
    assert device_pixels.mean() == pytest.approx(host_pixels.mean(), abs=0.03)
    assert device_pixels.std() == pytest.approx(host_pixels.std(), abs=0.03)
    host_labels = np.concatenate([b["label"] for b in host])
    np.testing.assert_array_equal(np.concatenate([b["label"] for b in on_device]), host_labels)


def test_augmentation_changes_pixels_never_labels_and_is_seeded(sample):
    _, plain = feeds(sample, augment=False)
    _, augmented = feeds(sample, augment=True)
    for a, p in zip(train_epoch(augmented, steps=3), train_epoch(plain, steps=3), strict=True):
        np.testing.assert_array_equal(a["label"], p["label"])
        assert not np.allclose(a["image"], p["image"])
    again = train_epoch(feeds(sample, augment=True)[1], steps=3)
    other_epoch = train_epoch(augmented, epoch=1, steps=3)
    np.testing.assert_array_equal(again[0]["image"], train_epoch(augmented, steps=1)[0]["image"])
    assert not np.array_equal(other_epoch[0]["image"], again[0]["image"])


def test_an_epoch_visits_every_training_example_once(sample):
    _, device = feeds(sample, augment=False)
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
    the parameters after 6 steps must be that loop's, scanned or unrolled. In float64, so that
    float32 rounding cannot flip a ReLU between the two compilations and hide a real difference."""
    _, feed = feeds(sample, augment=True, batch_size=8)
    config = default_config(dataset="image_folder", model="resnet8")
    config.update(learning_rate=0.05, dtype="float64")
    order = epoch_permutation(len(sample.train), feed.seed, 0)[:48].reshape(6, 8)
    constants = feed.constants("train")

    def per_step_batch(step):
        draws = np.stack([np.zeros(8), np.full(8, step), np.arange(8)], axis=1).astype(np.int32)
        keys = jax.vmap(lambda draw: example_key(feed.seed, draw))(draws)
        images = jax.vmap(pad_crop_flip)(constants["images"][order[step]], keys)
        return {"image": feed.normalize(images), "label": constants["labels"][order[step]]}

    with jax.enable_x64(True):
        optimizer, _ = make_optimizer(config, total_steps=100)
        graphdef, start = create_train_state(config, num_classes=10, input_channels=1, optimizer=optimizer)
        start = jax.tree.map(lambda x: x.astype(jnp.float64) if x.dtype == jnp.float32 else x, start)
        one_step = jax.jit(functools.partial(train_step, graphdef, optimizer))
        expected = start
        for step in range(6):
            expected = one_step(expected, per_step_batch(step))

        for unroll in (True, False):
            train = jax.jit(
                functools.partial(train_steps, graphdef, optimizer, feed.train_batch, unroll=unroll),
                static_argnums=3,
            )
            state = start
            for inputs, num_steps in itertools.islice(
                feed.train_calls(epoch=0, start_step=0, steps_per_call=3), 2
            ):
                state = train(state, inputs, constants, num_steps)
            assert int(state.step) == 6
            # Only the float32 images' rounding differs (normalized inside or outside the step).
            jax.tree.map(
                lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9),
                state.params,
                expected.params,
            )


def test_evaluation_covers_every_example_exactly_once(sample):
    _, device = feeds(sample, augment=False)
    make_batch = jax.jit(device.eval_batch)
    constants = device.constants("validation")
    batches = [
        jax.tree.map(np.asarray, make_batch(inputs, constants)) for inputs in device.eval_inputs("validation")
    ]
    assert [int(b["mask"].sum()) for b in batches] == [96] * 8 + [32]
    labels = np.concatenate([b["label"][b["mask"]] for b in batches])
    np.testing.assert_array_equal(labels, sample.validation.labels)


@pytest.mark.parametrize("pad_after_normalization", [False, True], ids=["black", "grey"])
def test_augmented_validation_images_are_each_members_own_the_same_in_both_feeds(
    sample, pad_after_normalization
):
    """The paper's validation images are cropped and flipped afresh every epoch: both feeds crop
    them alike (the draws are a function of seed and epoch alone), each member its own way, member
    k as the one-seed run of seed + k; the test images are never augmented."""
    settings = dict(batch_size=32, eval_batch_size=96, seed=3, augment=True, augment_validation=True)
    settings.update(pad_after_normalization=pad_after_normalization)
    mesh = parallel.make_mesh(2)
    tfdata = TfDataFeed(sample, mesh, num_seeds=2, **settings)
    device = DeviceFeed(sample, mesh, num_seeds=2, **settings)
    make_batch = jax.jit(members.over_members(device.eval_batch, 2, in_axes=(0, None)))

    def validation_images(epoch):
        host = [np.asarray(batch["image"]) for batch in tfdata.eval_inputs("validation", epoch)]
        constants = device.constants("validation")
        inputs = device.eval_inputs("validation", epoch)
        on_device = [np.asarray(make_batch(batch, constants)["image"]) for batch in inputs]
        return np.concatenate(host, axis=1), np.concatenate(on_device, axis=1)  # (members, images, ...)

    host, on_device = validation_images(0)
    np.testing.assert_allclose(on_device, host, atol=1e-6)
    assert not np.allclose(host[0], host[1]) and not np.allclose(validation_images(1)[0], host)
    alone = TfDataFeed(sample, parallel.make_mesh(), **{**settings, "seed": 4})
    member = np.concatenate([np.asarray(b["image"]) for b in alone.eval_inputs("validation", 0)])
    np.testing.assert_array_equal(member, host[1])
    tests = np.concatenate([np.asarray(b["image"]) for b in tfdata.eval_inputs("test", 0)])
    np.testing.assert_allclose(tests[: len(sample.test)], device.normalize(sample.test.images), atol=1e-6)


def run_quickstart(pipeline, workdir):
    from configs import quickstart
    from flax_resnets.training.loop import train_and_evaluate

    config = quickstart.get_config()
    config.num_epochs = 3
    config.input_pipeline = pipeline
    return train_and_evaluate(config, workdir)


@pytest.mark.slow
def test_training_on_device_data_reaches_the_accuracy_of_tf_data(tmp_path):
    on_device = run_quickstart("device", tmp_path / "device")
    on_host = run_quickstart("tfdata", tmp_path / "tfdata")
    assert on_device["test_accuracy"] > 0.65 and on_host["test_accuracy"] > 0.65
    assert on_device["test_accuracy"] == pytest.approx(on_host["test_accuracy"], abs=0.08)


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
        "--config.input_pipeline=device",
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
