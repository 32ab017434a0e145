"""The training-parity harness: both sides train on the same images after the same cut, and the
command prints both sides' runs and a verdict that follows from its numbers."""

import re

import numpy as np
import pytest
from conftest import write_image_folder
from PIL import Image

from flax_resnets.commands.parity_train import compare
from flax_resnets.config import default_config
from flax_resnets.data.sources import load_config_dataset, load_dataset
from flax_resnets.errors import InputError

SIDES = ("ours", "theirs")
torch_trainer = pytest.importorskip("flax_resnets.twins.torch_trainer", reason="PyTorch: a test dependency")


def test_both_sides_cut_the_same_training_and_validation_images(tmp_path):
    root = write_image_folder(tmp_path / "images", train_per_class=20, size=(32, 32))  # no resizing
    ours = load_dataset("image_folder", data_dir=str(root), split_seed=3, train_images=40)
    recipe = their_recipe(split_seed=3, train_images=40, augment_validation=False)
    training, held_out, testing, channels, classes = torch_trainer.split(root, recipe)
    pairs = ((ours.train, training), (ours.validation, held_out), (ours.test, testing))
    for ours_split, theirs_split in pairs:
        np.testing.assert_array_equal(theirs_split.pixels, ours_split.images)
        np.testing.assert_array_equal(theirs_split.labels.numpy(), ours_split.labels)
    assert (len(training), channels, classes) == (40, 3, 3)


def their_recipe(**fields):
    recipe = {
        "model": "resnet8", "epochs": 1, "batch_size": 16, "learning_rate": 0.1, "momentum": 0.9,
        "weight_decay": 0.0, "validation_fraction": 0.2, "split_seed": 0, "train_images": 0,
    }  # fmt: skip
    return torch_trainer.Recipe(**{**recipe, **fields})


@pytest.mark.parametrize("normalization", ["plus_minus_one", "data", "pytorch_cifar"])
def test_both_sides_normalise_with_the_same_constants(tmp_path, normalization):
    root = write_image_folder(tmp_path / "images", train_per_class=20, size=(32, 32))
    config = default_config(dataset="image_folder")
    config.update(data_dir=str(root), normalization=normalization)
    mean, std = load_config_dataset(config).normalization_constants()
    training = torch_trainer.split(root, their_recipe(normalization=normalization))[0]
    np.testing.assert_allclose(training.normalization, (mean, std), rtol=1e-6)
    expected = {"plus_minus_one": (0.5,) * 3, "pytorch_cifar": (0.2023, 0.1994, 0.2010)}.get(normalization)
    if expected:
        assert std == expected


def test_both_sides_read_grey_images_as_three_identical_channels(tmp_path):
    root = write_image_folder(tmp_path / "images", size=(32, 32), mode="L")  # no resizing
    config = default_config(dataset="fashion_mnist")  # the paper's Fashion-MNIST: 3 channels
    config.update(dataset="image_folder", data_dir=str(root))
    ours = load_config_dataset(config)
    theirs = torch_trainer.split(root, their_recipe(image_channels=3))[2]  # the test split
    assert ours.channels == 3 and (ours.test.images == ours.test.images[..., :1]).all()
    np.testing.assert_array_equal(theirs.pixels, ours.test.images)


@pytest.mark.parametrize("after, padding", [(False, -1.0), (True, 0.0)])
def test_both_sides_pad_crops_black_or_with_zero_after_normalising(tmp_path, after, padding):
    """White images: every pixel is 1.0 after (x - 0.5) / 0.5, so a crop's padding shows as -1.0
    (black, the paper's CIFAR) or 0.0 (mid-grey, its Fashion-MNIST), in training and validation."""
    import jax

    from flax_resnets.data.feeds import CallStep, Feed
    from flax_resnets.runtime import members, parallel

    root = write_image_folder(tmp_path / "images", size=(32, 32), train_per_class=40)
    for path in root.rglob("*.png"):
        Image.fromarray(np.full((32, 32, 3), 255, np.uint8)).save(path)
    config = default_config(dataset="image_folder")
    config.update(data_dir=str(root), pad_after_normalization=after)
    dataset = load_config_dataset(config)
    settings = dict(batch_size=16, eval_batch_size=16, seed=0, augment=True, augment_validation=True)
    feed = Feed(dataset, parallel.make_mesh(), pad_after_normalization=after, **settings)
    train_batch, eval_batch = jax.jit(feed.train_batch), jax.jit(feed.eval_batch)
    train_constants = feed.constants("train")
    ours = [  # of the feed's one member
        np.asarray(train_batch(CallStep(*members.split(inputs, 1), train_constants, 0, step))["image"])
        for step, (inputs, _) in enumerate(feed.train_calls(epoch=0, start_step=0, steps_per_call=1))
    ]
    ours += [
        np.asarray(eval_batch(*members.split(inputs, 1), feed.constants("validation"))["image"])
        for inputs in feed.eval_inputs("validation", epoch=0)
    ]
    training, held_out, *_ = torch_trainer.split(root, their_recipe(pad_after_normalization=after))
    theirs = [data[i][0].numpy() for data in (training, held_out) for i in range(len(data))]
    for side in (ours, theirs):
        assert set(np.unique(np.concatenate([x.ravel() for x in side])).tolist()) == {padding, 1.0}


def test_pytorch_cifars_constants_are_refused_for_grey_images(tmp_path):
    root = write_image_folder(tmp_path / "images", mode="L")
    config = default_config(dataset="image_folder")
    config.update(data_dir=str(root), normalization="pytorch_cifar")
    message = "for 3-channel images, and these have 1: use normalization='data' or 'plus_minus_one'"
    with pytest.raises(InputError, match=message):
        load_config_dataset(config)


def test_the_verdict_is_three_standard_errors_plus_half_a_point():
    runs = lambda accuracies: [  # noqa: E731
        {"test_accuracy": a, "best_val_accuracy": a, "final_train_loss": 1.0, "final_train_accuracy": a}
        for a in accuracies
    ]
    summary = compare(runs([0.50, 0.52, 0.54]), runs([0.40, 0.41, 0.42]))
    assert summary["difference"] == pytest.approx(0.11)
    assert summary["standard error"] == pytest.approx((0.02**2 / 3 + 0.01**2 / 3) ** 0.5)
    assert summary["limit"] == pytest.approx(3 * summary["standard error"] + 0.005)
    assert abs(summary["difference"]) > summary["limit"]  # a real difference: exit status 1


@pytest.mark.slow
def test_the_harness_trains_both_sides_and_reports_each_seed(tmp_path, capsys):
    from flax_resnets.commands import parity

    root = write_image_folder(tmp_path / "images", train_per_class=40, test_per_class=10)
    flags = [
        "--model=resnet8",
        f"--config.data_dir={root}",
        "--config.num_seeds=2",
        "--config.learning_rate=0.05",
    ]
    status = parity.main(["--train", *flags])
    assert status in (0, 1)
    lines = capsys.readouterr().out.splitlines()
    seeds_and_sides = (["0", "ours"], ["0", "theirs"], ["1", "ours"], ["1", "theirs"])
    rows = [line.split() for line in lines[-9:] if line.split()[:2] in seeds_and_sides]  # the final table
    assert len(rows) == 4 and all(len(row) == 6 for row in rows)
    assert any(line.startswith("  ours (2 seeds): test acc") for line in lines)
    verdict = lines[-1]
    assert verdict.startswith("test accuracy, ours - theirs:")
    tests = {side: [float(row[2].rstrip("%")) for row in rows if row[1] == side] for side in SIDES}
    difference, limit = (float(number) for number in re.findall(r"([-+]?\d+\.\d+)%", verdict)[::2])
    assert difference == pytest.approx(np.mean(tests["ours"]) - np.mean(tests["theirs"]), abs=0.011)
    assert status == (0 if abs(difference) <= limit else 1)
    assert ("within seed noise" in verdict) == (status == 0)
