"""The CPU compile options: what they change in the compiled step, and what they must not."""

import dataclasses
import re

import jax
import numpy as np
import pytest
from flax import nnx

from flax_resnets.commands.benchmark import FlaxBench, bench_config, random_dataset
from flax_resnets.config import default_config
from flax_resnets.models.layers import Layers
from flax_resnets.runtime import xla_cpu
from flax_resnets.runtime.tuning import for_backend
from flax_resnets.training import programs
from flax_resnets.training.steps import create_train_state, make_optimizer


def library_fusion_bodies(hlo_text: str) -> list[str]:
    """The bodies of the computations that XLA hands to YNNPACK."""
    called = re.findall(r'calls=%?([\w.\-]+), .*"kind":"__ynn_fusion"', hlo_text)
    return [re.search(rf"^%?{re.escape(name)} .*?\n}}", hlo_text, re.M | re.S).group(0) for name in called]


def test_cpu_step_keeps_convolutions_out_of_ynnpack_and_its_results(monkeypatch):
    options = xla_cpu.compiler_options()
    if not options:
        pytest.skip("this jaxlib or backend takes no library-fusion option")
    # resnet8's training step on a random batch of 4, compiled with the options.
    config, dataset = bench_config("resnet8", 4, "float32", 1), random_dataset(4, 4, 3)
    tuned = FlaxBench(config, dataset)
    bodies = library_fusion_bodies(tuned.train.as_text())
    # YNNPACK still gets BatchNorm's reductions, but no convolution.
    assert any("reduce(" in body for body in bodies)
    assert not any("convolution(" in body for body in bodies)

    untuned = dataclasses.replace(for_backend(), compiler_options={})
    monkeypatch.setattr(programs, "for_backend", lambda platform=None: untuned)  # where programs are built
    default = FlaxBench(config, dataset)
    expected = jax.device_get(default.train_call().params)
    got = jax.device_get(tuned.train_call().params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, expected)


def test_a_users_xla_flags_win_over_the_options(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", f"--{xla_cpu.LIBRARY_FUSIONS_OPTION}=")
    xla_cpu.compiler_options.cache_clear()
    try:
        assert xla_cpu.compiler_options() == {}
    finally:
        monkeypatch.undo()
        xla_cpu.compiler_options.cache_clear()


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_convolution_of_a_map_smaller_than_its_kernel_matches_lax(size):
    """Maps under the 3x3 kernel (1 and 2) take the patch-matmul path; 3 and 5 take lax's."""
    numbers = ("NHWC", "HWIO", "NHWC")

    def reference(x, kernel):
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=numbers)

    def ours(x, kernel):
        return xla_cpu.small_map_convolution(x, kernel, (1, 1), [(1, 1), (1, 1)], dimension_numbers=numbers)

    layer = Layers(convolution=xla_cpu.small_map_convolution).conv(8, 6, 3, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (4, size, size, 8))
    kernel = layer.kernel[...]
    np.testing.assert_allclose(layer(x), reference(x, kernel), rtol=1e-5, atol=1e-5)
    assert ("conv_general_dilated" in str(jax.make_jaxpr(ours)(x, kernel))) == (size >= 3)
    cotangent = jax.random.normal(jax.random.key(2), (4, size, size, 6))
    got = jax.vjp(ours, x, kernel)[1](cotangent)
    expected = jax.vjp(reference, x, kernel)[1](cotangent)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_on_a_cpu_the_trainer_builds_models_with_xla_cpus_convolution():
    tuning = for_backend()
    assert (tuning.unroll, tuning.compiler_options) == (True, xla_cpu.compiler_options())
    assert tuning.convolution is xla_cpu.small_map_convolution
    config = default_config(model="resnet8")
    optimizer, _ = make_optimizer(config, total_steps=1)
    graphdef, state = create_train_state(config, num_classes=10, input_channels=3, optimizer=optimizer)
    model = nnx.merge(graphdef, state.params, state.batch_stats)
    convolutions = {
        id(conv.conv_general_dilated) for _, conv in nnx.iter_graph(model) if isinstance(conv, nnx.Conv)
    }
    assert convolutions == {id(tuning.convolution)}
