"""Images decoded and resized as an image folder's: the path a trained model's inputs take too."""

import numpy as np
from PIL import Image

from flax_resnets.data.decoding import decode_image_files, resize_arrays
from flax_resnets.data.image_folder import image_channels, list_image_folder


def test_files_and_arrays_come_out_alike_32x32_uint8_and_32x32_pixels_untouched(tmp_path):
    rng = np.random.default_rng(0)
    exact = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    large = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    for name, pixels in (("exact.png", exact), ("large.png", large)):
        Image.fromarray(pixels).save(tmp_path / name)
    decoded = decode_image_files([str(tmp_path / "exact.png"), str(tmp_path / "large.png")], channels=3)
    assert decoded.shape == (2, 32, 32, 3) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded[0], exact)  # already 32x32: not resampled
    np.testing.assert_array_equal(resize_arrays([exact, large]), decoded)
    flat = resize_arrays([np.full((28, 28, 1), 77, np.uint8)])  # antialiased resizing keeps a flat image
    assert flat.shape == (1, 32, 32, 1) and (flat == 77).all()


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
