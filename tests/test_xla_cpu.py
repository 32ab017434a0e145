"""The CPU compile options: what they change in the compiled step, and what they must not."""

import re

import jax
import numpy as np
import pytest

from flax_resnets import xla_cpu
from flax_resnets.benchmark import FlaxBench


def library_fusion_bodies(hlo_text: str) -> list[str]:
    """The bodies of the computations that XLA hands to YNNPACK."""
    called = re.findall(r'calls=%?([\w.\-]+), .*"kind":"__ynn_fusion"', hlo_text)
    return [re.search(rf"^%?{re.escape(name)} .*?\n}}", hlo_text, re.M | re.S).group(0) for name in called]


def test_cpu_step_keeps_convolutions_out_of_ynnpack_and_its_results(monkeypatch):
    options = xla_cpu.compiler_options()
    if not options:
        pytest.skip("this jaxlib or backend takes no library-fusion option")
    # resnet8's training step on a random batch of 4, compiled with the options.
    tuned = FlaxBench("resnet8", batch_size=4, dtype="float32", steps_per_call=1, input_channels=3)
    bodies = library_fusion_bodies(tuned.train.as_text())
    # YNNPACK still gets BatchNorm's reductions, but no convolution.
    assert any("reduce(" in body for body in bodies)
    assert not any("convolution(" in body for body in bodies)

    monkeypatch.setattr(xla_cpu, "compiler_options", lambda: {})
    default = FlaxBench("resnet8", batch_size=4, dtype="float32", steps_per_call=1, input_channels=3)
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
