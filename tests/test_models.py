"""The model zoo: Table 1's parameter counts, shapes, BatchNorm and dropout modes, seeds,
plain/residual twins."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flax_resnets.models import MODELS, RESIDUAL_TWINS, abstract_model, count_parameters, create_model
from flax_resnets.models.flops import forward_gflops
from flax_resnets.models.layers import Dropout, Layers, adaptive_average_pool, dropout_mask

# Parameter counts at 10 classes and 3 input channels: the paper's models exactly, as its code
# printed them (docs/recipe.md), He et al.'s (2016) to their printed digits.
EXPECTED_PARAMETERS = {
    "alexnet": (56_826_698, 0.0),
    "vgg19": (20_554_826, 0.0),
    "resnet18": (11_173_962, 0.0),
    "resnet34": (21_282_122, 0.0),
    "resnet50": (23_520_842, 0.0),
    "resnet20": (0.27e6, 0.01),
    "resnet32": (0.46e6, 0.01),
    "resnet44": (0.66e6, 0.01),
    "resnet56": (0.85e6, 0.01),
    "resnet110": (1.7e6, 0.03),  # He et al. print "1.7M", two significant figures.
    # n=1 of the same family, counted by hand: stem 432, stages 4,608 + 13,824 + 55,296,
    # BatchNorm scales and shifts 480, head 650.
    "resnet8": (75_290, 0.0),
    # The same for vgg8, by hand: convolutions 448 + 4,640 + 18,496 + 2 x 36,928, classifier
    # 4,160 + 4,160 + 650.
    "vgg8": (106_410, 0.0),
}
# CIFAR-100's VGG19 has BatchNorm; the paper's code printed no count there, computed from its modules.
PARAMETERS_AT_100_CLASSES = {"vgg19_bn": 20_612_004, "alexnet": 57_195_428, "resnet18": 11_220_132}


@pytest.mark.parametrize("name", EXPECTED_PARAMETERS)
def test_parameter_count_matches_the_paper(name):
    expected, tolerance = EXPECTED_PARAMETERS[name]
    assert count_parameters(abstract_model(name)) == pytest.approx(expected, rel=tolerance)


@pytest.mark.parametrize("name", PARAMETERS_AT_100_CLASSES)
def test_parameter_count_at_100_classes_matches_the_papers_code(name):
    assert count_parameters(abstract_model(name, num_classes=100)) == PARAMETERS_AT_100_CLASSES[name]


def test_every_registered_model_is_covered_by_a_count_or_a_twin():
    counted = set(EXPECTED_PARAMETERS) | set(PARAMETERS_AT_100_CLASSES)
    assert set(MODELS) == counted | {"resnet101", "resnet152"} | set(RESIDUAL_TWINS)


@pytest.mark.slow
def test_deeper_bottleneck_resnets_grow_with_depth():
    counts = [count_parameters(abstract_model(n)) for n in ("resnet50", "resnet101", "resnet152")]
    assert counts[0] < counts[1] < counts[2]
    assert counts[2] == pytest.approx(58.16e6, rel=0.01)  # torchvision's 60.2M less the 1000-way head


# One model of each kind of network the registry builds (every ResNet depth is the same class from
# another spec: their parameter counts above check the specs), with 1 and 3 channels.
FAMILIES = ("alexnet", "vgg19", "vgg19_bn", "resnet18", "resnet50", "resnet20", "plain20")
SHAPE_CASES = [(name, channels, classes) for name in FAMILIES for channels, classes in ((1, 10), (3, 100))]


@pytest.mark.parametrize("name, input_channels, num_classes", SHAPE_CASES)
def test_output_shape_in_both_modes(name, input_channels, num_classes):
    model = abstract_model(name, num_classes=num_classes, input_channels=input_channels)
    images = jax.ShapeDtypeStruct((2, 32, 32, input_channels), jnp.float32)
    key = jax.random.key(0)
    for train in (True, False):
        logits = jax.eval_shape(lambda m, x, train=train: m(x, train=train, dropout_key=key), model, images)
        assert logits.shape == (2, num_classes)
        assert logits.dtype == jnp.float32


@pytest.mark.parametrize("name", ["resnet8", "plain8", "vgg8"])  # every family's shapes: above
def test_forward_runs_and_is_finite(name):
    model = create_model(name, num_classes=7, input_channels=1)
    images = jax.random.normal(jax.random.key(1), (3, 32, 32, 1))
    for train in (True, False):
        logits = model(images, train=train, dropout_key=jax.random.key(2))
        assert logits.shape == (3, 7)
        assert np.isfinite(np.asarray(logits)).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet", "vgg8"])  # the two classifiers with dropout
def test_dropout_draws_its_masks_from_the_key_in_training_only(name):
    model = create_model(name, num_classes=10, input_channels=3)
    images = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
    first = model(images, train=True, dropout_key=jax.random.key(5))
    np.testing.assert_array_equal(first, model(images, train=True, dropout_key=jax.random.key(5)))
    assert not np.allclose(first, model(images, train=True, dropout_key=jax.random.key(6)), atol=1e-6)
    # Evaluation drops nothing and needs no key; training without one is refused.
    evaluated = model(images, train=False)
    np.testing.assert_array_equal(evaluated, model(images, train=False, dropout_key=jax.random.key(5)))
    with pytest.raises(ValueError, match="needs a dropout_key in training mode"):
        model(images, train=True)


def test_dropout_zeroes_half_the_units_and_doubles_the_others():
    layer = Dropout(0.5, stream=3)
    x = jnp.ones((64, 512))
    dropped = np.asarray(layer(x, train=True, key=jax.random.key(0)))
    assert set(np.unique(dropped)) == {0.0, 2.0}
    assert (dropped == 0).mean() == pytest.approx(0.5, abs=0.01)
    # Layer ``stream`` draws from fold_in(key, stream): what a PyTorch twin is fed.
    expected = dropout_mask(jax.random.fold_in(jax.random.key(0), 3), x.shape, 0.5)
    np.testing.assert_array_equal(dropped != 0, expected)
    np.testing.assert_array_equal(layer(x, train=False, key=None), x)


@pytest.mark.parametrize("size, shape", [(6, (4, 4)), (2, (4, 4)), (3, (7, 5)), (4, (4, 4))])
def test_adaptive_average_pool_is_pytorchs_overlapping_bins_included(size, shape):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, *shape, 3))
    ours = np.asarray(adaptive_average_pool(jnp.asarray(x, jnp.float32), size))
    theirs = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), size)
    np.testing.assert_allclose(ours, theirs.permute(0, 2, 3, 1).numpy(), rtol=1e-6, atol=1e-6)


def test_alexnet_pools_its_4x4_map_up_to_6x6_with_overlapping_bins():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    pooled = np.asarray(adaptive_average_pool(x, 6))[0, :, :, 0]
    # Rows (and columns) of the 6x6 map average input rows [0], [0,1], [1], [2], [2,3], [3].
    rows = np.array(
        [[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0.5, 0.5], [0, 0, 0, 1]]
    )
    np.testing.assert_allclose(pooled, rows @ np.arange(16.0).reshape(4, 4) @ rows.T)


@pytest.mark.slow
def test_vgg_is_initialised_he_fan_out_normal_with_zero_biases_as_the_papers_code():
    model = create_model("vgg19")
    conv = model.stages[3][1].conv  # 3x3, 512 -> 512
    assert np.asarray(conv.kernel[...]).std() == pytest.approx(np.sqrt(2 / (9 * 512)), rel=0.02)
    assert not np.asarray(conv.bias[...]).any()
    bound = 512**-0.5  # the classifier keeps PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(np.asarray(model.fc2.kernel[...])).max() <= bound
    assert np.asarray(model.fc2.kernel[...]).std() == pytest.approx(bound / np.sqrt(3), rel=0.02)
    pytorch = create_model("vgg19", init="pytorch").stages[3][1].conv
    assert np.abs(np.asarray(pytorch.kernel[...])).max() <= (9 * 512) ** -0.5


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown model\(s\) resnet19; .*vgg19.*resnet18"):
        create_model("resnet19")


def batch_stats(model):
    return jax.tree.map(np.array, nnx.state(model, nnx.BatchStat))


def test_batch_norm_updates_running_statistics_in_training_mode_only():
    model = create_model("resnet20")
    images = jax.random.normal(jax.random.key(0), (4, 32, 32, 3)) * 2.0 + 1.0
    initial = batch_stats(model)

    model(images, train=False)
    after_eval = batch_stats(model)
    jax.tree.map(np.testing.assert_array_equal, initial, after_eval)

    model(images, train=True)
    after_train = batch_stats(model)
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), initial, after_train)
    assert all(jax.tree.leaves(changed))


def test_batch_norm_computes_what_pytorch_computes():
    model = create_model("resnet20")
    # A 2x2 map of 2 images: 8 values per channel, where the unbiased variance is 8/7 of the biased.
    images = jax.random.normal(jax.random.key(0), (2, 2, 2, 3)) * 3.0 + 2.0
    normalised = model.stem_bn(model.stem_conv(images), use_running_average=False)
    # PyTorch: running = 0.9 * old + 0.1 * batch, with the unbiased batch variance.
    features = np.asarray(model.stem_conv(images), np.float64)
    batch_mean = features.mean(axis=(0, 1, 2))
    np.testing.assert_allclose(model.stem_bn.mean[...], 0.1 * batch_mean, rtol=1e-5, atol=1e-6)
    unbiased = features.var(axis=(0, 1, 2), ddof=1)
    np.testing.assert_allclose(model.stem_bn.var[...], 0.9 + 0.1 * unbiased, rtol=1e-5, atol=1e-6)
    # ... and normalises with the biased one, eps 1e-5 (scale 1 and shift 0 at initialisation).
    expected = (features - batch_mean) / np.sqrt(features.var(axis=(0, 1, 2)) + 1e-5)
    np.testing.assert_allclose(normalised, expected, rtol=1e-4, atol=1e-4)


def test_batch_norm_variance_keeps_its_digits_where_the_mean_is_large_beside_the_spread():
    # A channel at 300 +- 0.05 in float32: E[x^2] - E[x]^2 cancels 9e4 against 9e4 and keeps
    # nothing of the 2.5e-3 variance; PyTorch's BatchNorm2d (two passes) keeps it. What is left
    # is the float32 mean's own rounding (1.5e-4 here, 3e-3 of a standard deviation).
    torch = pytest.importorskip("torch")
    features = (300.0 + 0.05 * np.random.default_rng(0).standard_normal((16, 4, 4, 3))).astype(np.float32)
    layer = Layers().batch_norm(3, rngs=nnx.Rngs(0))
    ours = np.asarray(layer(jnp.asarray(features), use_running_average=False))
    theirs_layer = torch.nn.BatchNorm2d(3)
    theirs = theirs_layer(torch.from_numpy(features).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-2)
    np.testing.assert_allclose(layer.var[...], theirs_layer.running_var.numpy(), rtol=1e-5)
    assert np.std(ours, axis=(0, 1, 2)) == pytest.approx([1.0] * 3, abs=0.01)


def test_evaluation_mode_is_independent_of_the_rest_of_the_batch():
    model = create_model("resnet20")
    model(jax.random.normal(jax.random.key(0), (8, 32, 32, 3)), train=True)  # move running stats
    images = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
    together = model(images, train=False)
    alone = model(images[:1], train=False)
    np.testing.assert_allclose(together[:1], alone, rtol=1e-5, atol=1e-5)
    in_training = model(images, train=True)[:1]
    assert not np.allclose(in_training, alone, atol=1e-3)


def parameters(model):
    return jax.tree.map(np.asarray, nnx.state(model, nnx.Param))


def test_same_seed_gives_identical_parameters_and_another_seed_does_not():
    first, second = parameters(create_model("resnet20", seed=3)), parameters(create_model("resnet20", seed=3))
    jax.tree.map(np.testing.assert_array_equal, first, second)
    other = parameters(create_model("resnet20", seed=4))
    differs = jax.tree.map(lambda a, b: not np.array_equal(a, b), first, other)
    assert any(jax.tree.leaves(differs))


def parameter_shapes(model):
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return {tuple(str(k) for k in path): tuple(v.shape) for path, v in flat}


@pytest.mark.parametrize("plain, residual", list(RESIDUAL_TWINS.items()))
def test_plain_and_residual_twins_differ_only_by_shortcuts(plain, residual):
    plain_shapes = parameter_shapes(abstract_model(plain))
    residual_shapes = parameter_shapes(abstract_model(residual))
    without_shortcuts = {path: s for path, s in residual_shapes.items() if "shortcut" not in path}
    assert plain_shapes == without_shortcuts
    assert graph_without_shortcuts(plain) == graph_without_shortcuts(residual)


def graph_without_shortcuts(name):
    """Every layer of the model in order, by path and type, shortcut branches left out."""
    return [
        (path, type(node).__name__)
        for path, node in nnx.iter_graph(abstract_model(name))
        if isinstance(node, nnx.Module) and "shortcut" not in path
    ]


def test_shortcut_is_what_makes_the_twins_compute_differently():
    plain, residual = create_model("plain20"), create_model("resnet20")
    nnx.update(residual, nnx.state(plain))  # option-A shortcuts have no parameters: same state
    images = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    assert not np.allclose(plain(images, train=False), residual(images, train=False), atol=1e-4)
    # Remove the residual branch's contribution: zero the last BatchNorm scale and shift of every
    # block, and the residual network passes its (padded, subsampled) input straight through.
    for block in residual.blocks:
        block.bn2.scale[...] = jnp.zeros_like(block.bn2.scale[...])
        block.bn2.bias[...] = jnp.zeros_like(block.bn2.bias[...])
    stem = nnx.relu(residual.stem_bn(residual.stem_conv(images), use_running_average=True))
    x = stem
    for block in residual.blocks:
        x = x if block.shortcut is None else block.shortcut(x, train=False)
    expected = residual.head(x.mean(axis=(1, 2)))
    np.testing.assert_allclose(residual(images, train=False), expected, rtol=1e-5, atol=1e-5)


def test_bfloat16_compute_keeps_float32_parameters():
    model = create_model("resnet20", dtype=jnp.bfloat16, seed=0)
    reference = create_model("resnet20", seed=0)
    assert {p.dtype for p in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype(jnp.float32)}
    images = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    jaxpr = jax.make_jaxpr(lambda x: model(x, train=False))(images)
    assert "bf16[2,32,32,16]" in str(jaxpr)  # activations really are bfloat16
    logits = model(images, train=False)
    assert logits.dtype == jnp.float32
    np.testing.assert_allclose(logits, reference(images, train=False), rtol=0.1, atol=0.1)


def test_forward_gflops_counts_every_multiply_accumulate_of_alexnet():
    convs = [  # (output pixels, kernel taps, input channels, output channels)
        (32 * 32, 9, 3, 64),
        (16 * 16, 9, 64, 192),
        (8 * 8, 9, 192, 384),
        (8 * 8, 9, 384, 256),
        (8 * 8, 9, 256, 256),
    ]
    macs = sum(p * k * i * o for p, k, i, o in convs) + 9216 * 4096 + 4096 * 4096 + 4096 * 10
    assert forward_gflops(create_model("alexnet")) == pytest.approx(2 * macs / 1e9)


def test_model_table_command_prints_a_row_per_model(capsys):
    from flax_resnets.commands import models

    assert models.main(["--models", "resnet20,plain20"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [row[0] for row in rows] == ["resnet20", "plain20"]
    assert rows[0][1] == f"{count_parameters(create_model('resnet20')):,}"
    assert float(rows[0][2]) == pytest.approx(forward_gflops(create_model("resnet20")), abs=5e-4)


@pytest.mark.slow
def test_models_import_and_run_without_tensorflow():
    script = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['tensorflow_datasets'] = None\n"
        "import jax.numpy as jnp\n"
        "from flax_resnets.models import create_model\n"
        "print(create_model('resnet20')(jnp.zeros((1, 32, 32, 3)), train=False).shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 10)"
