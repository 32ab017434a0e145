"""The Flax models compute what their PyTorch twins compute, and start where PyTorch starts."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flax_resnets.commands import parity
from flax_resnets.models import create_model, layers, named_arrays

torch_models = pytest.importorskip("flax_resnets.twins.torch_models", reason="PyTorch: a test dependency")


def fresh_init_failures(name, init="paper"):
    """Tensors of ``name`` whose fresh initialisation is off its twin's (the paper's code's) beyond
    sampling noise."""
    import torch

    flax_params = named_arrays(nnx.state(create_model(name, seed=1, init=init), nnx.Param))
    torch.manual_seed(1)
    twin = torch_models.flax_layout_arrays(torch_models.torch_model(name))
    return parity.init_ratios(flax_params, {k: twin[k] for k in flax_params})[1]


# One model of each kind (AlexNet, VGG with and without BatchNorm, basic and bottleneck blocks with
# projection shortcuts, He's option-A shortcuts, a plain net): every depth is the same code.
@pytest.mark.parametrize(
    "name", ["alexnet", "vgg19", "vgg19_bn", "resnet18", "resnet50", "resnet20", "plain20"]
)
def test_default_initialisation_is_the_papers_codes_layer_by_layer(name):
    assert fresh_init_failures(name) == []


def test_the_initialisation_check_tells_he_from_pytorch():
    failures = fresh_init_failures("resnet20", init="he")
    assert failures and all(re.search(r"conv\d?/kernel ", failure) for failure in failures)
    # VGG's twin draws He's convolutions, as the paper's code: PyTorch's defaults are off it.
    failures = fresh_init_failures("vgg19", init="pytorch")
    assert failures and all(re.search(r"conv/(kernel|bias) ", failure) for failure in failures)


def test_he_initialisation_draws_convolutions_from_fan_out_normals():
    kernel = np.asarray(create_model("resnet18", init="he").blocks[2].conv2.kernel[...])  # 3x3, 128 -> 128
    assert kernel.std() == pytest.approx(np.sqrt(2 / (9 * 128)), rel=0.02)
    pytorch = np.asarray(create_model("resnet18").blocks[2].conv2.kernel[...])
    assert np.abs(pytorch).max() <= (9 * 128) ** -0.5 and pytorch.std() == pytest.approx(
        (3 * 9 * 128) ** -0.5, rel=0.02
    )


@pytest.mark.slow
def test_flax_and_pytorch_take_the_same_training_steps():
    """BatchNorm in a plain network (whose early updates are mostly rounding); in a residual one:
    the parity command's own run in tests/test_command_faults.py (resnet8, batch 4, 2 steps, exit 0
    only if every check passes); a VGG's layers and dropout: the dropout test below (vgg8)."""
    result = parity.compare_model(
        "plain8", batch_size=8, num_steps=2, input_channels=3, num_classes=10, seed=0
    )
    assert result["failures"] == []
    # In float64 the two frameworks agree to rounding: the same computation, step for step.
    assert max(result["float64"].values()) < 1e-9
    assert result["float32"]["logits train"] < 1e-4


@pytest.mark.slow
def test_parity_catches_a_batch_norm_that_keeps_the_biased_variance(monkeypatch):
    """The check can fail: running statistics that follow the biased batch variance (Flax's own
    BatchNorm) are 1/(n-1) off PyTorch's."""

    def biased(self, x, use_running_average=None, **kwargs):
        return nnx.BatchNorm.__call__(self, x, use_running_average=use_running_average)

    monkeypatch.setattr(layers.BatchNorm, "__call__", biased)
    result = parity.compare_model(
        "resnet8", batch_size=4, num_steps=1, input_channels=1, num_classes=3, seed=0
    )
    assert any("running stats" in failure for failure in result["failures"])
    assert result["float64"]["running stats"] > 1e-4


@pytest.mark.slow
def test_parity_feeds_the_flax_steps_dropout_masks_to_the_twin():
    """With the Flax step's masks the twin takes the same step in float64; with another step's, it
    computes something else: the check compares dropout, it does not switch it off."""
    import torch

    config = parity.parity_config("vgg8", batch_size=4, seed=0)
    dataset, images, labels = parity.parity_data(config, num_steps=2, channels=3, num_classes=10)
    flax64, start, dropout_rng = parity.run_flax(config, dataset, images, labels, float64=True)
    shape = {"num_classes": 10, "dtype": torch.float64}
    same = parity.run_twin("vgg8", start, dropout_rng, 4, images, labels, **shape)
    assert max(parity.compare_outcomes(flax64, same).values()) < 1e-9
    other_rng = np.asarray(jax.random.key_data(jax.random.key(99)))
    other = parity.run_twin("vgg8", start, other_rng, 4, images, labels, **shape)
    assert parity.compare_outcomes(flax64, other)["logits train"] > 1e-3


def test_the_schedule_is_torchs_cosine_annealing_epoch_by_epoch():
    assert parity.compare_schedule() <= parity.SCHEDULE_TOLERANCE


def test_the_twins_module_imports_torch_alone_and_states_the_models_constants():
    """``torch_modules.py`` is copied beside exported weights: nothing of this project in it."""
    import ast

    from flax_resnets.models import alexnet, vgg
    from flax_resnets.twins import torch_modules

    nodes = list(ast.walk(ast.parse(open(torch_modules.__file__).read())))
    imported = {alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in nodes if isinstance(node, ast.ImportFrom)}
    imported = {name.split(".")[0] for name in imported}
    assert imported == {"__future__", "collections", "typing", "torch"}
    assert torch_modules.DROPOUT_RATE == alexnet.DROPOUT_RATE == vgg.DROPOUT_RATE
    assert torch_modules.FEATURE_MAP_SIZE == alexnet.FEATURE_MAP_SIZE


def test_load_refuses_weights_that_do_not_fit_the_twin():
    twin = torch_models.torch_model("resnet8")
    arrays = named_arrays(nnx.state(create_model("plain20"), (nnx.Param, nnx.BatchStat)))
    with pytest.raises(ValueError, match="no Flax counterpart|shape"):
        torch_models.load_flax_weights(twin, arrays)


def test_plain_twins_have_no_shortcuts():
    import torch

    plain, residual = torch_models.torch_model("plain20"), torch_models.torch_model("resnet20")
    arrays = named_arrays(nnx.state(create_model("plain20"), (nnx.Param, nnx.BatchStat)))
    for twin in (plain, residual):
        torch_models.load_flax_weights(twin, arrays)  # option-A shortcuts: the same tensors
    # Training mode: batch statistics keep the plain network's signal from vanishing.
    images = torch.randn(4, 3, 32, 32)
    flax_logits = create_model("plain20")(jnp.asarray(images.numpy().transpose(0, 2, 3, 1)), train=True)
    with torch.no_grad():
        np.testing.assert_allclose(plain(images).numpy(), flax_logits, rtol=1e-4, atol=1e-5)
        assert not np.allclose(plain(images).numpy(), residual(images).numpy(), atol=1e-2)
