"""Every config file loads, passes validation and builds its model; Table 1 has all its cells."""

import importlib.util
from pathlib import Path

import pytest
from flax import nnx

from flax_resnets.config import validate_config
from flax_resnets.models import count_parameters, create_model

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.py"))
# (input channels, classes) of each dataset; image folders: the quickstart's Fashion-MNIST sample.
DATASET_SHAPES = {"fashion_mnist": (1, 10), "cifar10": (3, 10), "cifar100": (3, 100), "image_folder": (1, 10)}


def load_config(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_loads_validates_and_builds_its_model(path):
    config = load_config(path)
    validate_config(config)
    channels, classes = DATASET_SHAPES[config.dataset]
    model = nnx.eval_shape(
        lambda: create_model(config.model, num_classes=classes, input_channels=channels, dtype=config.dtype)
    )
    assert count_parameters(model) > 0


def test_table_one_has_a_config_per_cell_with_the_paper_recipe():
    cells = {p.stem for p in CONFIGS} - {"default", "quickstart", "cifar10_fast"}
    datasets = ("fashion_mnist", "cifar10", "cifar100")
    models = ("alexnet", "vgg19", "resnet18", "resnet34", "resnet50")
    assert cells == {f"{d}_{m}" for d in datasets for m in models}
    for cell in cells:
        config = load_config(next(p for p in CONFIGS if p.stem == cell))
        assert f"{config.dataset}_{config.model}" == cell
        assert (config.learning_rate, config.momentum, config.weight_decay) == (0.001, 0.9, 0.001)
        assert (config.batch_size, config.num_epochs, config.validation_fraction) == (16, 20, 0.2)


def test_quickstart_reads_the_sample_shipped_with_the_package():
    config = load_config(next(p for p in CONFIGS if p.stem == "quickstart"))
    assert config.dataset == "image_folder"
    assert (Path(config.data_dir) / "train").is_dir() and (Path(config.data_dir) / "test").is_dir()
