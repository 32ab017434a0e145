"""Bad files get one line that names them (or are skipped with a warning), never a traceback:
image folders with stray, broken or unusual files, damaged array files and caches."""

import json
import os
import re
import shutil

import numpy as np
import pytest
from conftest import write_image_folder
from PIL import Image

from flax_resnets.data import image_folder as folders
from flax_resnets.data import sources
from flax_resnets.data.sources import load_dataset
from flax_resnets.errors import InputError


def load(root):
    return load_dataset("image_folder", data_dir=str(root))


def first_class(root, split="train"):
    return root / split / "class_0"


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "content", [b"", os.urandom(300), PNG_SIGNATURE + os.urandom(200)], ids=["empty", "random", "header"]
)
def test_a_file_that_is_not_an_image_is_named(image_folder, content):
    bad = first_class(image_folder) / "0005.png"
    bad.write_bytes(content)
    with pytest.raises(InputError, match=re.escape(f"{bad} is not a readable image")):
        load(image_folder)


def test_an_image_over_pillows_decompression_bomb_limit_is_named(image_folder, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 28x28 is over twice that: Pillow refuses it
    message = r"/0\d\d\d\.png is not a readable image \(Image size .* exceeds limit"
    with pytest.raises(InputError, match=message):
        load(image_folder)


def test_a_broken_link_is_named(image_folder):
    broken = first_class(image_folder) / "0100.png"
    broken.symlink_to(image_folder / "nowhere.png")
    with pytest.raises(InputError, match=re.escape(f"{broken} is not a readable image")):
        load(image_folder)


def test_hidden_entries_folders_and_other_files_are_skipped_with_one_warning(image_folder, capsys):
    reference = load(image_folder)
    (first_class(image_folder) / ".DS_Store").write_bytes(os.urandom(64))
    (first_class(image_folder) / "0000_notes.txt").write_text("not an image")
    (first_class(image_folder) / ".ipynb_checkpoints").mkdir()
    (image_folder / "train" / ".ipynb_checkpoints").mkdir()
    (image_folder / "train" / "README.md").write_text("about the images")
    capsys.readouterr()
    dataset = load(image_folder)
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: skipped 5 entries of")
    assert dataset.class_names == reference.class_names == ("class_0", "class_1", "class_2")
    assert dataset.fingerprint() == reference.fingerprint()


def test_bmp_gif_and_webp_images_and_a_name_that_is_not_utf8_are_read_beside_png(image_folder):
    reference = load(image_folder)
    extra = Image.fromarray(np.full((28, 28, 3), 200, np.uint8))
    for index, suffix in enumerate((".bmp", ".gif", ".webp")):
        extra.save(first_class(image_folder) / f"9{index}{suffix}")
    with open(os.fsencode(first_class(image_folder)) + b"/\xff\xfe.png", "wb") as latin1_name:
        extra.save(latin1_name, format="PNG")  # once a UnicodeEncodeError in the folder's fingerprint
    dataset = load(image_folder)
    images = len(dataset.train) + len(dataset.validation)
    assert images == len(reference.train) + len(reference.validation) + 4
    assert dataset.channels == 3


def test_channels_come_from_all_the_images_not_the_first(tmp_path):
    grey = write_image_folder(tmp_path / "grey", mode="L")
    Image.fromarray(np.zeros((28, 28, 4), np.uint8), "RGBA").save(first_class(grey) / "0000a.png")
    assert load(grey).channels == 3  # colour in one image: RGB, the alpha dropped
    assert load(write_image_folder(tmp_path / "all_grey", mode="L")).channels == 1


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: [shutil.rmtree(p) for p in (root / "test").iterdir()], "test has no class folders"),
        (lambda root: (root / "train" / "class_9").mkdir(), "class_9 holds no images"),
        (lambda root: (root / "test" / "class_9").mkdir(), "is a class with no train/class_9/"),
    ],
    ids=["test without classes", "empty class", "class only in test"],
)
def test_folders_that_cannot_be_trained_on_are_refused(image_folder, damage, message):
    damage(image_folder)
    with pytest.raises(InputError, match=re.escape(message)):
        load(image_folder)


@pytest.mark.parametrize(
    "lines, message",
    [
        ("class_0 cat\nclass_1 dog\nclass_2 hot dog\n", None),
        ("class_0 cat\nclass_1 dog\n", "must name each class folder once"),
        ("class_0 cat\nclass_1 dog\nclass_2\n", "must name each class folder once"),
        ("class_0 cat\nclass_0 dog\nclass_1 a\nclass_2 b\n", "must name each class folder once"),
        ("class_0 cat\nclass_1 dog\nclass_7 b\n", "must name each class folder once"),
    ],
    ids=["named", "one missing", "one without a name", "one twice", "an unknown label"],
)
def test_classes_txt_names_each_class_folder_or_is_refused(image_folder, lines, message):
    (image_folder / "classes.txt").write_text(lines)
    if message is None:
        assert load(image_folder).class_names == ("cat", "dog", "hot dog")
    else:
        with pytest.raises(InputError, match=f"classes.txt {message}"):
            load(image_folder)


def test_the_fashion_mnist_sample_names_its_garments():
    labels = tuple(sorted(p.name for p in (sources.SAMPLE_FASHION_MNIST / "train").iterdir()))
    names = folders.class_names(sources.SAMPLE_FASHION_MNIST / "classes.txt", labels)
    assert names[0] == "T-shirt/top" and names[9] == "Ankle boot" and len(set(names)) == 10


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: b"",
        lambda data: data[:100] + bytes([data[100] ^ 0xFF]) + data[101:],
    ],
    ids=["truncated", "empty", "bit-flipped"],
)
def test_a_damaged_array_file_asks_for_a_new_export(image_folder, tmp_path, damage):
    exported = tmp_path / "data.npz"
    sources.save_arrays(exported, sources.read_image_folder(str(image_folder)), compressed=True)
    exported.write_bytes(damage(exported.read_bytes()))
    with pytest.raises(InputError, match="export the dataset again"):
        load_dataset("image_folder", data_dir=str(exported))


def test_a_damaged_cache_is_decoded_again_with_a_warning(image_folder, isolated_cache, capsys):
    reference = load(image_folder)
    (cached,) = isolated_cache.glob("*.npz")
    cached.write_bytes(cached.read_bytes()[:1000])
    capsys.readouterr()
    assert load(image_folder).fingerprint() == reference.fingerprint()
    assert "warning: the decoded-image cache" in capsys.readouterr().err
    assert load(image_folder).fingerprint() == reference.fingerprint()  # the cache was rewritten


def test_a_cache_that_cannot_be_written_is_a_warning(image_folder, tmp_path, monkeypatch, capsys):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("FLAX_RESNETS_CACHE", str(not_a_folder / "cache"))
    assert len(load(image_folder).test) == 12
    assert "set FLAX_RESNETS_CACHE to a writable folder" in capsys.readouterr().err


def test_exporting_onto_a_folder_is_refused_and_leaves_nothing(image_folder, tmp_path, capsys):
    from flax_resnets.commands import data
    from flax_resnets.files import write_text

    folder = tmp_path / "out" / "data.npz"
    folder.mkdir(parents=True)
    with pytest.raises(SystemExit):  # by --out's type, before anything is read
        data.main(["export", "--dataset=image_folder", f"--data_dir={image_folder}", f"--out={folder}"])
    assert f"argument --out: {folder} is a folder, not a file to write" in capsys.readouterr().err
    with pytest.raises(IsADirectoryError):  # a failed rename leaves no temporary file behind
        write_text(folder, "text")
    assert list((tmp_path / "out").iterdir()) == [folder] and not any(folder.iterdir())


def test_a_cut_off_last_metrics_line_is_left_out_and_a_bad_middle_line_named(tmp_path, capsys):
    from flax_resnets.runs.metrics import read_jsonl

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert read_jsonl(metrics) == [{"epoch": 1}, {"epoch": 2}]
    assert "the last line of" in capsys.readouterr().err
    metrics.write_text('{"epoch": 1}\n{"epo\n{"epoch": 3}\n')
    with pytest.raises(InputError, match="line 2, is not JSON"):
        read_jsonl(metrics)
    metrics.write_bytes(b'{"epoch": 1}\n{"epoch": "\xff"}\n{"epoch": 3}\n')  # a byte that is not UTF-8
    with pytest.raises(InputError, match="line 2, is not JSON"):
        read_jsonl(metrics)


def test_reports_tell_runs_of_one_name_apart_and_show_a_run_without_epochs(tmp_path, capsys):
    from flax_resnets.commands import reports

    for parent in ("a", "b"):
        (tmp_path / parent / "qs").mkdir(parents=True)
        config = {
            "model": "resnet8",
            "dataset": "cifar10",
            "dtype": "float32",
            "batch_size": 16,
            "num_epochs": 3,
        }
        (tmp_path / parent / "qs" / "config.json").write_text(json.dumps(config))
    (tmp_path / "a" / "qs" / "metrics.jsonl").write_text('{"epoch": 1, "val_accuracy": 0.5}\n')
    assert reports.main([str(tmp_path / "a" / "qs"), str(tmp_path / "b" / "qs")]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["a/qs", "b/qs"]
    assert rows[0].split()[5] == "1/3" and rows[1].split()[5] == "0/3"  # b/qs has no epoch yet


def test_class_names_in_a_script_the_font_lacks_draw_without_a_warning(tmp_path, recwarn):
    from flax_resnets.runs.plots import plot_confusion

    plot_confusion([[3, 1], [0, 4]], ["猫", "犬"], "cats and dogs", tmp_path / "confusion.png")
    assert (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert not [w for w in recwarn if "Glyph" in str(w.message)]


def test_reading_checkpoints_read_only_logs_nothing(tmp_path, caplog):
    from flax_resnets.training.checkpoints import Checkpoints

    (tmp_path / "checkpoints").mkdir()
    with caplog.at_level("WARNING"), Checkpoints(tmp_path / "checkpoints", read_only=True) as checkpoints:
        assert checkpoints.steps() == []
    assert not caplog.records
