"""Shared fixtures: an isolated cache, small generated image folders, the real data when present."""

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite tests the CPU's programs (and compiles TPU programs as targets): where libtpu or a GPU
# plugin is installed too (CI installs libtpu), JAX and the processes the tests start stay on the CPU.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_collection_modifyitems(items):
    """Files with the most end-to-end (slow) tests first: the two workers take whole files in this
    order, and end together when the long files do not come last."""
    slow = {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + (item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: -slow[item.path])  # stable: each file's tests keep their order


@pytest.fixture(scope="session")
def compile_cache(tmp_path_factory):
    """One persistent JAX compilation cache for a test worker and the main.py processes it starts."""
    return tmp_path_factory.mktemp("jax_cache")


@pytest.fixture(scope="session", autouse=True)
def in_process_compile_cache(compile_cache):
    """The tests' own compilations use the cache too: many compile the same small programs."""
    import jax

    jax.config.update("jax_compilation_cache_dir", str(compile_cache))


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own decoded-dataset cache, so no test sees another's files."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("FLAX_RESNETS_CACHE", str(cache))
    return cache


def write_image_folder(
    root: Path, *, classes=3, train_per_class=10, test_per_class=4, size=(28, 28), mode="RGB"
):
    """A class-sorted folder like ../shared/data: root/{train,test}/<label>/NNNN.png, random pixels."""
    rng = np.random.default_rng(0)
    channels = {"RGB": 3, "L": 1}[mode]
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for label in range(classes):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                # Class-dependent brightness, so that labels and pixels stay traceable.
                pixels = rng.integers(0, 60, (*size, channels)) + 60 * label
                image = Image.fromarray(pixels.astype(np.uint8).squeeze(), mode)
                image.save(folder / f"{index:04d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path):
    return write_image_folder(tmp_path / "images")


@pytest.fixture(scope="session")
def fashion_mnist_subset(tmp_path_factory):
    """The first 1,250 training and 200 test images of each class of the real Fashion-MNIST, unzipped
    from ../shared/data; skips when that is absent."""
    archive = SHARED_DATA / "fashion_mnist_png.zip"
    if not archive.exists():
        pytest.skip(f"real data not available: {archive} is absent (it ships beside the CI clone only)")
    root = tmp_path_factory.mktemp("real")
    with zipfile.ZipFile(archive) as zf:
        names = sorted(zf.namelist())  # fashion_mnist/<split>/<label>/NNNN.png
        wanted = [
            name
            for split, per_class in (("train", 1250), ("test", 200))
            for label in range(10)
            for name in [n for n in names if n.startswith(f"fashion_mnist/{split}/{label}/")][:per_class]
        ]
        zf.extractall(root, members=wanted)
    return root / "fashion_mnist"
