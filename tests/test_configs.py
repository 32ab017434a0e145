"""Every config file loads, passes validation and builds its model; Table 1's cells are the
paper's notebooks' runs, each differing from the shared recipe only where docs/recipe.md's table
(read here) does."""

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from flax_resnets.checks import validate_config
from flax_resnets.config import cell_config, default_config
from flax_resnets.models import count_parameters, create_model

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.py"))
# (input channels, classes) of each dataset as read; image folders: the quickstart's sample.
DATASET_SHAPES = {"fashion_mnist": (1, 10), "cifar10": (3, 10), "cifar100": (3, 100), "image_folder": (1, 10)}
RECIPE = Path(__file__).resolve().parents[1] / "docs" / "recipe.md"
DATASET_NAMES = {"Fashion-MNIST": "fashion_mnist", "CIFAR-10": "cifar10", "CIFAR-100": "cifar100"}
MODEL_NAMES = {"VGG19 without BN": "vgg19", "VGG19 with BN": "vgg19_bn"}  # the rest: lower case


def recipe_cells():
    """docs/recipe.md's table of the 15 cells: cell -> (model as run, weight decay, epochs)."""
    lines = RECIPE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| cell | model as run |"))
    cells = {}
    for line in lines[start + 2 : start + 17]:
        cell, model, weight_decay, epochs = [c.strip().strip("*") for c in line.strip("|").split("|")][:4]
        dataset, _, name = cell.rpartition(" ")
        cells[f"{DATASET_NAMES[dataset]}_{name.lower()}"] = (
            MODEL_NAMES.get(model, model.lower()),
            float(weight_decay),
            int(epochs),
        )
    return cells


# Parameters of each model as run, at the paper's classes (docs/recipe.md).
PAPER_PARAMETERS = {
    ("alexnet", 10): 56_826_698,
    ("vgg19", 10): 20_554_826,
    ("resnet18", 10): 11_173_962,
    ("resnet34", 10): 21_282_122,
    ("resnet50", 10): 23_520_842,
    ("alexnet", 100): 57_195_428,
    ("vgg19_bn", 100): 20_612_004,
    ("resnet18", 100): 11_220_132,
    ("resnet34", 100): 21_328_292,
    ("resnet50", 100): 23_705_252,
}


def load_config(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def config_channels(config):
    channels, classes = DATASET_SHAPES[config.dataset]
    return (config.image_channels or channels), classes


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_loads_validates_and_builds_its_model(path):
    config = load_config(path)
    validate_config(config)
    channels, classes = config_channels(config)
    model = nnx.eval_shape(
        lambda: create_model(config.model, num_classes=classes, input_channels=channels, dtype=config.dtype)
    )
    images = jax.ShapeDtypeStruct((2, 32, 32, channels), jnp.float32)
    logits = jax.eval_shape(lambda m, x: m(x, train=False), model, images)
    assert logits.shape == (2, classes)


CELLS = sorted(p.stem for p in CONFIGS if p.stem not in ("default", "quickstart", "cifar10_fast"))


def test_table_one_has_a_config_per_cell():
    datasets = ("fashion_mnist", "cifar10", "cifar100")
    models = ("alexnet", "vgg19", "resnet18", "resnet34", "resnet50")
    assert set(CELLS) == {f"{d}_{m}" for d in datasets for m in models} == set(recipe_cells())


@pytest.mark.parametrize("cell", CELLS)
def test_each_cell_is_the_shared_recipe_but_where_the_notebook_ran_it_otherwise(cell):
    config = load_config(next(p for p in CONFIGS if p.stem == cell)).to_dict()
    assert config == cell_config(cell).to_dict()  # the sweep's and table1's recipe is the file's
    dataset, _, model = cell.rpartition("_")
    shared = default_config(dataset=dataset, model=model).to_dict()
    differing = {field for field in shared if config[field] != shared[field]}
    as_run = (config["model"], config["weight_decay"], config["num_epochs"])
    assert as_run == recipe_cells()[cell]
    assert differing <= {"model", "weight_decay", "num_epochs", "paper_cell"} and config["paper_cell"] == cell
    # Common to every cell (docs/recipe.md): the optimizer, schedule, data and selection.
    assert (config["learning_rate"], config["momentum"], config["batch_size"]) == (0.001, 0.9, 16)
    assert (config["schedule"], config["cosine_period_epochs"]) == ("cosine_epochs", 50)
    assert (config["normalization"], config["validation_fraction"], config["augment_validation"]) == (
        "plus_minus_one",
        0.2,
        True,
    )
    fashion = dataset == "fashion_mnist"
    grey_padding = (config["image_channels"], config["pad_after_normalization"])
    assert grey_padding == ((3, True) if fashion else (0, False))
    channels, classes = config_channels(load_config(next(p for p in CONFIGS if p.stem == cell)))
    model_shape = nnx.eval_shape(
        lambda: create_model(config["model"], num_classes=classes, input_channels=channels)
    )
    assert count_parameters(model_shape) == PAPER_PARAMETERS[(config["model"], classes)]


def test_quickstart_reads_the_sample_shipped_with_the_package():
    config = load_config(next(p for p in CONFIGS if p.stem == "quickstart"))
    assert config.dataset == "image_folder"
    assert (Path(config.data_dir) / "train").is_dir() and (Path(config.data_dir) / "test").is_dir()


def fields_table() -> list[str]:
    """The README's table of fields: each field, its default (the dataset's where it depends on it)
    and its meaning."""
    from flax_resnets.config import FIELDS, shown_value

    cifar, fashion = default_config(), default_config(dataset="fashion_mnist")
    rows = ["| field | default | meaning |", "| --- | --- | --- |"]
    for field, meaning in FIELDS.items():
        default = shown_value(cifar[field])
        if field != "dataset" and fashion[field] != cifar[field]:
            default = f"{shown_value(fashion[field])} for Fashion-MNIST, else {default}"
        rows.append(f"| `{field}` | {default} | {meaning} |")
    return rows


def test_every_field_has_one_meaning_and_the_readmes_table_is_the_one_the_code_makes():
    from flax_resnets.config import FIELDS

    assert set(FIELDS) == set(default_config().keys())
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text().splitlines()
    start = readme.index("| field | default | meaning |", readme.index("## Config fields"))
    end = readme.index("", start)
    assert readme[start:end] == fields_table(), "regenerate the README's table from fields_table() here"


def test_the_config_command_shows_a_files_fields_with_overrides_marked_and_refuses_unknown_ones(capsys):
    from flax_resnets.commands import config as config_command
    from flax_resnets.errors import InputError

    quickstart = str(Path(__file__).resolve().parents[1] / "configs" / "quickstart.py")
    assert config_command.main([quickstart, "--config.num_seeds=3", "--config.augment=False"]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert rows["num_seeds"][:2] == ["*", "3"] and rows["augment"][:2] == ["*", "False"]
    assert rows["seed"][0] == "0" and rows["seed"][1:3] == ["initialization,", "shuffling,"]
    with pytest.raises(InputError, match="the config has no field 'num_seed'"):
        config_command.main([quickstart, "--config.num_seed=3"])


def test_a_config_file_reads_no_data_module_model_jax_or_tensorflow():
    """Config files import the recipe alone: loading one (e.g. to list its fields) costs no
    dataset reader, no model zoo, no JAX and no TensorFlow."""
    import subprocess
    import sys

    code = (
        "import sys, runpy\n"
        "runpy.run_path('configs/cifar10_resnet18.py')['get_config']()\n"
        "heavy = ('flax_resnets.data', 'flax_resnets.models', 'jax', 'tensorflow')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=CONFIGS[0].parents[1], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
