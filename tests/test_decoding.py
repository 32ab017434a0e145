"""One decoder for every image that enters a model: a training folder, ``data export``, ``predict``
and ``TrainedModel.predict`` give one file one array, whatever its format and mode."""

import numpy as np
import pytest
from PIL import Image
from test_inference import fresh

from flax_resnets.commands import data as data_command
from flax_resnets.data.arrays import load_arrays
from flax_resnets.data.image_folder import list_image_folder
from flax_resnets.data.images import image_channels, model_pixels, read_images
from flax_resnets.data.sources import load_dataset
from flax_resnets.errors import InputError

RNG = np.random.default_rng(0)
# A smooth picture (JPEG and a palette keep it closely) of 40x36: every door resizes it.
_ROWS, _COLUMNS = np.mgrid[0:40, 0:36]
COLOUR = np.stack([_ROWS * 6, _COLUMNS * 7, 255 - (_ROWS + _COLUMNS) * 3], axis=-1).astype(np.uint8)
DEEP = (RNG.integers(0, 65536, (28, 28)) // 257 * 257).astype(np.uint16)  # 16-bit grey, 8-bit exact


def odd_images(folder):
    """The same pictures in the modes that went astray before: a 16-bit PNG, a palette GIF, a CMYK
    JPEG, a BMP, a PNG with alpha and a grey one with alpha. Each in its own class folder."""
    rgb = Image.fromarray(COLOUR)
    files = {
        "deep.png": Image.fromarray(DEEP),  # mode I;16
        "palette.gif": rgb.quantize(64),
        "cmyk.jpg": rgb.convert("CMYK"),
        "plain.bmp": rgb,
        "alpha.png": rgb.convert("RGBA"),
        "grey_alpha.png": Image.fromarray(COLOUR[..., 0]).convert("LA"),
    }
    paths = []
    for name, image in files.items():
        for split in ("train", "test"):
            (folder / split / name.replace(".", "_")).mkdir(parents=True)
            path = folder / split / name.replace(".", "_") / name
            image.save(path)
        paths.append(path)
    return paths  # the test split's


def test_every_door_gives_one_file_the_same_array(tmp_path):
    paths = odd_images(tmp_path / "folder")
    channels = image_channels(paths)
    assert channels == 3 and Image.open(paths[0]).mode.startswith("I")  # the 16-bit PNG stays 16-bit
    doors = {"predict": read_images(paths, channels)}
    # A training folder (the test split: its order is the folder's, its labels the classes).
    dataset = load_dataset("image_folder", data_dir=str(tmp_path / "folder"), validation_fraction=0.0)
    labels = list_image_folder(tmp_path / "folder").labels
    by_class = dict(zip(dataset.test.labels, dataset.test.images, strict=True))
    doors["training folder"] = np.stack([by_class[labels.index(p.parent.name)] for p in paths])
    # data export's file.
    data_command.main(
        [
            "export",
            "--dataset=image_folder",
            f"--data_dir={tmp_path / 'folder'}",
            f"--out={tmp_path / 'x.npz'}",
        ]
    )
    exported = load_arrays(tmp_path / "x.npz")["test"]
    by_class = dict(zip(exported.labels, exported.images, strict=True))
    doors["data export"] = np.stack([by_class[labels.index(p.parent.name)] for p in paths])
    # TrainedModel.predict's input, from PIL images as opened (normalised by 0.5, 0.5: undone here).
    run = fresh("resnet8", channels=3)
    inputs = run.preprocess([Image.open(path) for path in paths])
    doors["run.predict"] = np.round((inputs * 0.5 + 0.5) * 255).astype(np.uint8)
    for door, images in doors.items():
        np.testing.assert_array_equal(images, doors["predict"], err_msg=door)
    # What they agree on: the 16-bit image scaled to 8 bits, not clipped to white; the colour
    # images are the picture (a JPEG within its compression's error).
    deep = np.asarray(Image.fromarray((DEEP // 257).astype(np.uint8)).resize((32, 32), Image.BILINEAR))
    np.testing.assert_array_equal(doors["predict"][0, ..., 0], deep)
    picture = np.asarray(Image.fromarray(COLOUR).resize((32, 32), Image.BILINEAR))
    np.testing.assert_array_equal(doors["predict"][3], picture)  # BMP
    np.testing.assert_array_equal(doors["predict"][4], picture)  # alpha dropped
    assert np.abs(doors["predict"][2].astype(int) - picture).mean() < 6  # CMYK JPEG (not inverted)
    assert np.abs(doors["predict"][1].astype(int) - picture).mean() < 6  # 64-colour palette


def test_a_model_of_one_channel_makes_colour_grey_by_luminance_in_every_format(tmp_path):
    paths = odd_images(tmp_path / "folder")
    grey = read_images(paths, channels=1)
    luminance = np.asarray(Image.fromarray(COLOUR).convert("L").resize((32, 32), Image.BILINEAR))
    for index in (3, 4):  # BMP and RGBA PNG: before, BMP, GIF and WebP kept only their red channel
        np.testing.assert_array_equal(grey[index, ..., 0], luminance)


def test_32x32_pixels_are_untouched_and_a_flat_image_stays_flat(tmp_path):
    exact = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(exact).save(tmp_path / "exact.png")
    np.testing.assert_array_equal(read_images([tmp_path / "exact.png"], 3)[0], exact)
    assert (model_pixels(np.full((28, 28, 1), 77, np.uint8), 1) == 77).all()


def test_integer_grey_is_scaled_from_its_own_depth(tmp_path):
    """16-bit grey in Pillow's "I;16" (a PNG now) and in its 32-bit "I" (16-bit PNGs in older
    Pillow, arrays converted by hand), and a 32-bit TIFF: each from its own range to 0-255."""
    eight = DEEP // 257
    for image in (Image.fromarray(DEEP), Image.fromarray(DEEP.astype(np.int32))):
        np.testing.assert_array_equal(
            model_pixels(image, 1)[..., 0], model_pixels(eight.astype(np.uint8), 1)[..., 0]
        )
    Image.fromarray(DEEP.astype(np.int32) * 32768).save(tmp_path / "deep32.tif")  # the picture at 32 bits
    Image.fromarray(DEEP.astype(np.int32)).save(tmp_path / "small32.tif")
    deep32, small32 = read_images([tmp_path / "deep32.tif", tmp_path / "small32.tif"], 1)
    np.testing.assert_allclose(deep32.astype(int), model_pixels(eight.astype(np.uint8), 1), atol=1)
    assert small32.max() == 0  # values of 16 bits in a file that says 32: dark, as it says


@pytest.mark.parametrize(
    "image, expected",
    [
        (np.zeros((0, 0, 3), np.uint8), "got an array of shape (0, 0, 3)"),
        (np.zeros((8, 8, 2), np.uint8), "got an array of shape (8, 8, 2)"),
        (np.zeros((4, 8, 8), np.uint8), "got an array of shape (4, 8, 8)"),
        (np.zeros((8, 8, 3), np.float32), "got float32 pixels"),
    ],
    ids=["empty", "two channels", "a grey batch", "floats"],
)
def test_an_image_that_is_not_one_is_a_value_error_saying_what_is_expected(image, expected):
    with pytest.raises(ValueError, match="expected a uint8 \\(H, W\\) or \\(H, W, C\\) image") as error:
        model_pixels(image, 3)
    assert expected in str(error.value) and isinstance(error.value, InputError)


def test_run_predict_takes_a_jax_batch_and_refuses_an_empty_one():
    import jax.numpy as jnp

    run = fresh("resnet8", channels=3)
    batch = RNG.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(run.preprocess(jnp.asarray(batch)), run.preprocess(batch))
    with pytest.raises(ValueError, match="expected at least one image; got an empty batch"):
        run.predict([])


def test_a_folder_is_listed_by_class_and_its_channels_are_any_images_colour(tmp_path):
    for split, label, mode in (("train", "b", "L"), ("train", "a", "RGB"), ("test", "a", "L")):
        (tmp_path / split / label).mkdir(parents=True, exist_ok=True)
        Image.new(mode, (8, 8)).save(tmp_path / split / label / "0.png")
    (tmp_path / "train" / "a" / ".hidden.png").write_bytes(b"")
    listing = list_image_folder(tmp_path)
    assert listing.labels == ("a", "b") and listing.channels == 3
    assert sorted(label for _, label in listing.examples["train"]) == [0, 1]
    assert any(".hidden.png" in entry for entry in listing.skipped)
    assert image_channels([str(tmp_path / "test" / "a" / "0.png")]) == 1
