"""The training-parity harness: both sides train on the same images after the same cut, and the
command prints both sides' runs and a verdict that follows from its numbers."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import write_image_folder
from run_helpers import REPO

from flax_resnets.commands.parity_train import compare
from flax_resnets.config import default_config
from flax_resnets.data.sources import load_config_dataset, load_dataset
from flax_resnets.errors import InputError

torch_trainer = pytest.importorskip("flax_resnets.twins.torch_trainer", reason="PyTorch: a test dependency")


def test_both_sides_cut_the_same_training_and_validation_images(tmp_path):
    root = write_image_folder(tmp_path / "images", train_per_class=20, size=(32, 32))  # no resizing
    ours = load_dataset("image_folder", data_dir=str(root), split_seed=3, train_images=40)
    recipe = torch_trainer.Recipe(
        model="resnet8", epochs=1, batch_size=16, learning_rate=0.1, momentum=0.9, weight_decay=0.0,
        validation_fraction=0.2, split_seed=3, train_images=40, schedule="cosine",
    )  # fmt: skip
    training, held_out, testing, channels, classes = torch_trainer.split(root, recipe)
    pairs = ((ours.train, training), (ours.validation, held_out), (ours.test, testing))
    for ours_split, theirs_split in pairs:
        pixels = np.rint(theirs_split.images.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
        np.testing.assert_array_equal(pixels, ours_split.images)
        np.testing.assert_array_equal(theirs_split.labels.numpy(), ours_split.labels)
    assert (len(training), channels, classes) == (40, 3, 3)


@pytest.mark.parametrize("normalization", ["data", "pytorch_cifar"])
def test_both_sides_normalise_with_the_same_constants(tmp_path, normalization):
    root = write_image_folder(tmp_path / "images", train_per_class=20, size=(32, 32))
    config = default_config(dataset="image_folder")
    config.update(data_dir=str(root), normalization=normalization)
    ours = load_config_dataset(config)
    recipe = torch_trainer.Recipe(
        model="resnet8", epochs=1, batch_size=16, learning_rate=0.1, momentum=0.9, weight_decay=0.0,
        validation_fraction=0.2, split_seed=0, train_images=0, schedule="cosine", normalization=normalization,
    )  # fmt: skip
    training = torch_trainer.split(root, recipe)[0]
    np.testing.assert_allclose(training.mean.flatten().numpy(), ours.mean, rtol=1e-6)
    np.testing.assert_allclose(training.std.flatten().numpy(), ours.std, rtol=1e-6)
    if normalization == "pytorch_cifar":
        assert ours.std == (0.2023, 0.1994, 0.2010)


def test_pytorch_cifars_constants_are_refused_for_grey_images(tmp_path):
    root = write_image_folder(tmp_path / "images", mode="L")
    config = default_config(dataset="image_folder")
    config.update(data_dir=str(root), normalization="pytorch_cifar")
    message = "for 3-channel images, and 'image_folder' has 1: use normalization='data'"
    with pytest.raises(InputError, match=message):
        load_config_dataset(config)


def test_the_verdict_is_three_standard_errors_plus_half_a_point():
    runs = lambda accuracies: [  # noqa: E731
        {"test_accuracy": a, "best_val_accuracy": a, "final_train_loss": 1.0} for a in accuracies
    ]
    summary = compare(runs([0.50, 0.52, 0.54]), runs([0.40, 0.41, 0.42]))
    assert summary["difference"] == pytest.approx(0.11)
    assert summary["standard error"] == pytest.approx((0.02**2 / 3 + 0.01**2 / 3) ** 0.5)
    assert summary["limit"] == pytest.approx(3 * summary["standard error"] + 0.005)
    assert abs(summary["difference"]) > summary["limit"]  # a real difference: exit status 1


@pytest.mark.slow
def test_the_harness_trains_both_sides_and_reports_each_seed(tmp_path):
    root = write_image_folder(tmp_path / "images", train_per_class=40, test_per_class=10)
    command = [
        *(sys.executable, "-m", "flax_resnets", "parity", "--train"),
        *("--model=resnet8", f"--data_dir={root}", "--epochs=1", "--seeds=2", "--learning_rate=0.05"),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    lines = result.stdout.splitlines()
    seeds_and_sides = (["0", "ours"], ["0", "theirs"], ["1", "ours"])
    rows = [line.split() for line in lines if line.split()[:2] in seeds_and_sides]
    assert len(rows) >= 3 and all(len(row) == 5 for row in rows)
    assert any(line.startswith("  ours (2 seeds): test acc") for line in lines)
    verdict = lines[-1]
    assert verdict.startswith("test accuracy, ours - theirs:")
    assert ("within seed noise" in verdict) == (result.returncode == 0)
