"""Using a trained run: load_run in Python, the predict command, and exports that reproduce the
logits elsewhere (PyTorch without JAX, named arrays)."""

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image_folder
from flax import nnx
from PIL import Image
from run_helpers import TINY, trained_here

from flax_resnets import load_run
from flax_resnets.__main__ import main as flax_resnets_main
from flax_resnets.config import default_config
from flax_resnets.data.sources import load_config_dataset
from flax_resnets.errors import InputError
from flax_resnets.inference import TrainedModel
from flax_resnets.inference.export import export_npz, export_torch
from flax_resnets.models import create_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Three classes of 28x28 colour images: every image is resized on its way in."""
    return write_image_folder(
        tmp_path_factory.mktemp("data") / "images", train_per_class=20, test_per_class=8
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, compile_cache, images):
    """A ResNet-8 trained for 3 epochs on the folder, and a VGG-8 (dropout) of two seeds."""
    root = tmp_path_factory.mktemp("runs")
    data = ["--config.dataset=image_folder", f"--config.data_dir={images}", "--config.num_epochs=3"]
    trained_here([*TINY, *data, f"--workdir={root / 'resnet8'}"])
    trained_here([*TINY, *data, "--config.model=vgg8", "--config.num_seeds=2", f"--workdir={root / 'vgg8'}"])
    return root


def test_load_run_predicts_the_test_images_as_eval_did(trained):
    run = load_run(trained / "resnet8")
    report = json.loads((trained / "resnet8" / "eval.json").read_text())
    assert run.checkpoint_step == report["checkpoint_step"] and run.class_names == tuple(
        report["class_names"]
    )
    test = load_config_dataset(run.config).test
    predictions = run.predict(test.images).argmax(-1)
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (test.labels, predictions), 1)
    assert confusion.tolist() == report["confusion"]
    assert run.predict(test.images[:4]).sum(-1) == pytest.approx(np.ones(4), rel=1e-5)


def test_the_predict_command_classifies_each_class_folder_as_eval_did_that_class(trained, images, capsys):
    report = json.loads((trained / "resnet8" / "eval.json").read_text())
    folders = [images / "test" / f"class_{label}" for label in range(3)]
    assert predict(f"--workdir={trained / 'resnet8'}", "--json", "--top_k=1", *map(str, folders)) == 0
    results = json.loads(capsys.readouterr().out)
    for label, folder in enumerate(folders):
        predicted = [item["top"][0]["class"] for item in results if Path(item["path"]).parent == folder]
        counts = [predicted.count(name) for name in report["class_names"]]
        assert counts == report["confusion"][label]  # decoded and resized as training's test images
    assert predict(f"--workdir={trained / 'resnet8'}", str(folders[0] / "0000.png")) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"{folders[0] / '0000.png'}: class_") and line.count("%)") == 3


def predict(*args):
    """``python -m flax_resnets predict ARGS`` in this process: its exit status."""
    return flax_resnets_main(["predict", *args])


def test_a_run_without_data_json_is_used_by_its_run_json_as_eval_uses_it(trained, images, tmp_path, capsys):
    workdir = tmp_path / "resnet8"
    shutil.copytree(trained / "resnet8", workdir)
    (workdir / "data.json").unlink()
    image = str(images / "test" / "class_2" / "0000.png")
    assert predict(f"--workdir={workdir}", "--top_k=1", image) == 0
    assert predict(f"--workdir={trained / 'resnet8'}", "--top_k=1", image) == 0
    ours, reference = capsys.readouterr().out.splitlines()
    assert ours == reference
    assert load_run(workdir).class_names == load_run(trained / "resnet8").class_names
    (workdir / "run.json").unlink()
    with pytest.raises(InputError, match="has neither data.json nor a run.json that records its data"):
        load_run(workdir)


def test_predict_goes_through_linked_folders_and_prints_each_name_on_one_line(
    trained, images, tmp_path, capsys
):
    """A folder linked inside the one named is read (once, even when linked twice); a name with a
    newline or bytes that are not UTF-8 is one line, escaped; a FIFO is named as what it is."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "linked").symlink_to(images / "test" / "class_0")
    (photos / "again").symlink_to(images / "test" / "class_0")
    source = images / "test" / "class_1" / "0000.png"
    odd = [b"two\nlines.png", b"latin\xe9.png"]
    for name in odd:
        with open(os.path.join(os.fsencode(photos), name), "wb") as file:
            file.write(source.read_bytes())
    assert predict(f"--workdir={trained / 'resnet8'}", "--top_k=1", str(photos)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 + 2  # the 8 images of class_0 (linked twice, read once), the two odd names
    assert sum(line.startswith((f"{photos / 'again'}/", f"{photos / 'linked'}/")) for line in lines) == 8
    assert any(line.startswith(f"{photos}/two\\nlines.png: class_") for line in lines)
    assert any(line.startswith(f"{photos}/latin\\udce9.png: class_") for line in lines)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(SystemExit):
        predict(f"--workdir={trained / 'resnet8'}", str(fifo))
    assert f"{fifo} is not a file or a folder (a pipe" in capsys.readouterr().err


def test_a_run_of_several_seeds_is_refused_without_a_seed_and_gives_each_member(trained):
    with pytest.raises(InputError, match=r"a run of 2 seeds \(0, 1\): choose one with seed=K"):
        load_run(trained / "vgg8")
    with pytest.raises(InputError, match="has no seed 5"):
        load_run(trained / "vgg8", seed=5)
    report = json.loads((trained / "vgg8" / "eval.json").read_text())
    test = load_config_dataset(load_run(trained / "vgg8", seed=0).config).test
    for member in report["seeds"]:
        run = load_run(trained / "vgg8", seed=member["seed"])
        assert run.checkpoint_step == member["checkpoint_step"]
        accuracy = (run.predict(test.images).argmax(-1) == test.labels).mean()
        assert accuracy == pytest.approx(member["test_accuracy"])


def test_the_python_api_takes_what_the_command_line_takes_and_refuses_the_rest_in_one_line(
    trained, images, monkeypatch
):
    monkeypatch.setenv("HOME", str(trained))
    run = load_run("~/resnet8")  # ~ as the command line expands it
    image = sorted((images / "test").rglob("*.png"))[0]
    expected = run.predict(np.asarray(Image.open(image)))
    np.testing.assert_array_equal(run.predict([str(image), image]), np.concatenate([expected, expected]))
    assert run.predict(Image.open(image).convert("LA")).shape == expected.shape  # grey with alpha
    for batch_size in (0, -1, 2.5, True):
        with pytest.raises(InputError, match=rf"batch_size must be a positive integer, not {batch_size!r}\."):
            run.predict(image, batch_size=batch_size)
    with pytest.raises(InputError, match="missing.png is not a readable image"):
        run.predict(images / "missing.png")
    with pytest.raises(InputError, match="has no seed '0'; its seeds are 0, 1"):
        load_run(trained / "vgg8", seed="0")


# A Python with torch and without JAX (or this project) loads the exported model and writes its logits.
IN_PLAIN_TORCH = """
import json, sys
import numpy as np
sys.modules["jax"] = sys.modules["flax"] = sys.modules["flax_resnets"] = None
import torch
import flax_resnets_twins
spec = json.load(open("model.pt.json"))
model = flax_resnets_twins.build(spec["architecture"]).eval()
model.load_state_dict(torch.load("model.pt"))
images = np.load("images.npy")  # NHWC, normalised
with torch.no_grad():
    np.save("torch_logits.npy", model(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy())
"""


def exported_logits(run, folder, images):
    export_torch(run, folder / "model.pt")
    np.save(folder / "images.npy", images)
    result = subprocess.run(
        [sys.executable, "-c", IN_PLAIN_TORCH], cwd=folder, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(folder / "torch_logits.npy")


def fresh(name, channels=3):
    """An untrained model as a ``TrainedModel``: the export path of AlexNet without training it."""
    config = default_config(model=name)
    model = create_model(name, num_classes=10, input_channels=channels, seed=3)
    model.eval()
    names = tuple(str(k) for k in range(10))
    return TrainedModel(model, name, names, channels, (0.5,) * channels, (0.5,) * channels, 0, 0, config)


def test_the_pytorch_export_gives_the_same_logits_without_jax(trained, tmp_path):
    runs = [load_run(trained / "resnet8"), load_run(trained / "vgg8", seed=1), fresh("alexnet")]
    rng = np.random.default_rng(0)
    for run in runs:
        folder = tmp_path / run.name
        folder.mkdir()
        pixels = rng.integers(0, 256, (6, 32, 32, run.channels)).astype(np.uint8)
        inputs = run.preprocess(pixels)
        theirs = exported_logits(run, folder, inputs)
        np.testing.assert_allclose(theirs, run.logits(pixels), rtol=1e-5, atol=1e-5)
        spec = json.loads((folder / "model.pt.json").read_text())
        assert spec["model"] == run.name and spec["normalization"]["mean"] == list(run.mean)


def test_an_export_under_a_file_size_limit_is_one_line_and_writes_nothing(trained, tmp_path, capsys):
    """A limit reached inside the file (what a full disk does): once PyTorch's own RuntimeError."""
    out = tmp_path / "model.pt"
    args = ["export", f"--workdir={trained / 'resnet8'}", "--format=torch", f"--out={out}"]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))  # the ResNet-8's state is 15 times that
    try:
        status = flax_resnets_main(args)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert status == 1 and capsys.readouterr().err.strip() == f"error: {out}: File too large."
    assert list(tmp_path.iterdir()) == []


def test_the_npz_export_holds_every_parameter_and_statistic_by_its_path(trained, tmp_path):
    run = load_run(trained / "resnet8")
    written = export_npz(run, tmp_path / "resnet8.npz")
    assert [path.name for path in written] == ["resnet8.npz", "resnet8.npz.json"]
    with np.load(written[0]) as arrays:
        state = nnx.state(run.model, (nnx.Param, nnx.BatchStat))
        flat = {"/".join(map(str, path)): np.asarray(v[...]) for path, v in nnx.to_flat_state(state)}
        assert set(arrays.files) == set(flat) and "blocks/0/bn1/var" in flat
        for name, array in flat.items():
            np.testing.assert_array_equal(arrays[name], array)


def test_preprocess_converts_pil_images_channels_and_sizes_as_the_runs_data():
    grey_model = fresh("resnet8", channels=1)
    colour = Image.fromarray(np.full((40, 30, 3), (200, 100, 50), np.uint8))
    assert grey_model.preprocess(colour).shape == (1, 32, 32, 1)  # made grey, resized
    colour_model = fresh("resnet8", channels=3)
    grey = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32).astype(np.uint8)
    inputs = colour_model.preprocess([grey, grey])
    assert inputs.shape == (2, 32, 32, 3) and (inputs[..., 0] == inputs[..., 2]).all()  # 3 equal channels
    np.testing.assert_allclose(inputs[0, ..., 0], (grey / 255.0 - 0.5) / 0.5, atol=1e-6)
    with pytest.raises(InputError, match="got float32 pixels: convert them to uint8"):
        colour_model.preprocess(np.zeros((2, 32, 32, 3), np.float32))


def test_predict_and_export_refuse_bad_input_in_one_line(trained, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.png").write_bytes(b"not a png")
    broken = str(tmp_path / "broken.png")
    for args, message in (
        (["predict", f"--workdir={tmp_path}", broken], "holds no run"),
        (["predict", f"--workdir={trained / 'resnet8'}", str(tmp_path / "empty")], "holds no image files"),
        (["predict", f"--workdir={trained / 'resnet8'}", broken], "is not a readable image"),
        (["predict", f"--workdir={trained / 'vgg8'}", broken], "choose one with seed=K"),
        (
            ["export", f"--workdir={trained / 'resnet8'}", "--out=model.npz"],
            "must be a file name ending in .pt",
        ),
    ):
        with pytest.raises(SystemExit) as exit_status:
            flax_resnets_main(args)
        lines = capsys.readouterr().err.strip().splitlines()
        assert exit_status.value.code == 2 and len(lines) == 1 and message in lines[0], lines
