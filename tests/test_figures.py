"""The paper's figures: filter-normalised directions, the loss surface around a checkpoint, and
both commands end to end on a tiny model."""

import dataclasses
import json
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx
from run_helpers import REPO, TINY, environment, trained_here

from flax_resnets import load_run
from flax_resnets.config import default_config
from flax_resnets.data.sources import SAMPLE_FASHION_MNIST, load_config_dataset
from flax_resnets.inference import landscape
from flax_resnets.models import create_model
from flax_resnets.training.loop import train_and_evaluate


def test_each_filter_of_a_direction_is_as_long_as_the_weights_filter_and_biases_do_not_move():
    params = nnx.state(create_model("resnet8", num_classes=10, input_channels=1), nnx.Param)
    direction = landscape.filter_normalised_direction(params, jax.random.key(3))
    flat = dict(nnx.to_flat_state(direction))
    weights = dict(nnx.to_flat_state(params))
    kernels = 0
    for path, value in flat.items():
        drawn, weight = np.asarray(value[...]), np.asarray(weights[path][...])
        if weight.ndim <= 1:  # biases, BatchNorm's scales and shifts
            np.testing.assert_array_equal(drawn, 0)
            continue
        kernels += 1
        filter_norm = lambda x: np.sqrt(np.square(x).reshape(-1, x.shape[-1]).sum(0))  # noqa: E731
        np.testing.assert_allclose(filter_norm(drawn), filter_norm(weight), rtol=1e-5)
        assert not np.allclose(drawn, weight)  # a random direction, not the weights
    assert kernels >= 8


def test_the_centre_of_the_grid_is_what_predict_gives_on_the_same_images(tmp_path):
    """The landscape evaluates the checkpoint on images made as the run made them (its
    normalisation, (x - 0.5) / 0.5 here, not the pixels' statistics): at (0, 0) its loss and
    accuracy are load_run's predictions' on the same images."""
    config = default_config(dataset="image_folder", model="resnet8")
    config.update(data_dir=str(SAMPLE_FASHION_MNIST), train_images=64, num_epochs=1, batch_size=16)
    train_and_evaluate(config, tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert run.class_names[0] == "T-shirt/top"  # the sample's classes.txt, into predict's answers
    dataset = load_config_dataset(run.config)
    dataset = dataclasses.replace(dataset, train=dataset.train.take(np.arange(40)))
    _, params, batch_stats = nnx.split(run.model, nnx.Param, nnx.BatchStat)
    directions = tuple(
        landscape.filter_normalised_direction(params, k) for k in jax.random.split(jax.random.key(0))
    )
    model_state = {"params": params, "batch_stats": batch_stats}
    coordinates = np.array([[0.0, 0.0], [0.5, -0.5]])
    loss, accuracy = landscape.loss_surface(run.config, dataset, model_state, directions, coordinates)
    probabilities = run.predict(dataset.train.images)
    labels = dataset.train.labels
    assert loss[0] == pytest.approx(-np.log(probabilities[np.arange(40), labels]).mean(), rel=1e-4)
    assert accuracy[0] == pytest.approx(np.mean(probabilities.argmax(-1) == labels))
    assert loss[1] != pytest.approx(loss[0], rel=1e-3)


def figures_command(*args):
    return [sys.executable, "-m", "flax_resnets", "figures", *args]


@pytest.mark.slow
def test_landscape_of_two_runs_writes_a_picture_and_a_grid_centred_on_each_checkpoint(
    tmp_path, compile_cache, image_folder
):
    workdirs = []
    for model in ("plain8", "resnet8"):
        workdir = tmp_path / model
        args = [
            *TINY,
            f"--config.model={model}",
            "--config.dataset=image_folder",
            f"--config.data_dir={image_folder}",
        ]
        trained_here([*args, f"--workdir={workdir}"])
        workdirs.append(workdir)
    out = tmp_path / "figures"
    command = figures_command(
        "landscape",
        *(f"--workdir={w}" for w in workdirs),
        "--grid=3",
        "--images=16",
        "--directions_seed=4",
        f"--out={out}",
    )
    result = subprocess.run(command, cwd=REPO, env=environment(compile_cache), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING" not in result.stderr, result.stderr[-3000:]  # the libraries' notices are not the user's
    assert (out / "landscape.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    grid = np.load(out / "landscape.npz")
    assert int(grid["directions_seed"]) == 4 and int(grid["images"]) == 16
    names = [str(name) for name in grid["names"]]
    assert [re.fullmatch(r"(\w+) \(seed 0, step \d+\)", name)[1] for name in names] == ["plain8", "resnet8"]
    for index in (0, 1):
        np.testing.assert_allclose(grid[f"x_{index}"], [-1.0, 0.0, 1.0])
        loss = grid[f"loss_{index}"]
        assert loss.shape == (3, 3) and np.isfinite(loss).all()
        assert loss[1, 1] == loss.min() or not np.allclose(loss, loss[1, 1])  # a surface, not a constant


@pytest.mark.slow
def test_degradation_trains_plain_and_residual_nets_and_draws_their_errors(tmp_path, image_folder):
    from flax_resnets.commands import figures

    out = tmp_path / "figures"
    flags = ["--models=plain8,resnet8", f"--config.data_dir={image_folder}", "--config.num_epochs=2"]
    assert figures.main(["degradation", *flags, "--config.batch_size=8", f"--out={out}"]) == 0
    assert (out / "degradation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figure = json.loads((out / "degradation.json").read_text())
    assert figure["settings"]["recipe"] == "he" and figure["settings"]["batch_size"] == 8
    assert set(figure["runs"]) == {"plain8", "resnet8"}
    for name, run in figure["runs"].items():
        assert run["epoch"] == [1, 2]
        for errors in (run["train_error"], run["test_error"]):
            assert len(errors) == 2 and all(0 <= e <= 1 for e in errors)
        # Each epoch's test error is the test of that epoch's checkpoint (3 steps per epoch).
        reports = [json.loads(f.read_text()) for f in (out / "runs" / name).glob("eval*.json")]
        tested = {report["checkpoint_step"]: report["test_accuracy"] for report in reports}
        assert run["test_error"] == [pytest.approx(1 - tested[step]) for step in (3, 6)]
