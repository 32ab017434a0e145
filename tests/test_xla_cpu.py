"""The CPU compile options: what they change in the compiled step, and what they must not."""

import re

import jax
import numpy as np
import pytest

from flax_resnets import parallel, steps, xla_cpu
from flax_resnets.benchmark import replicated_train_state


def compiled_step(batch_size=4):
    """resnet8's training step compiled with the current options, and its inputs."""
    mesh = parallel.data_parallel_mesh()
    graphdef, optimizer, state = replicated_train_state(
        "resnet8", "float32", num_classes=10, input_channels=3, mesh=mesh
    )
    rng = np.random.default_rng(0)
    inputs = parallel.global_batch(
        {
            "image": rng.standard_normal((1, batch_size, 32, 32, 3), np.float32),
            "label": rng.integers(0, 10, (1, batch_size)).astype(np.int32),
        },
        mesh,
        batch_axis=1,
    )
    train = steps.jit_train_steps(graphdef, optimizer, lambda inputs, constants: inputs, mesh)
    return train.lower(state, inputs, {}).compile(), state, inputs


def library_fusion_bodies(hlo_text: str) -> list[str]:
    """The bodies of the computations that XLA hands to YNNPACK."""
    called = re.findall(r'calls=%?([\w.\-]+), .*"kind":"__ynn_fusion"', hlo_text)
    return [re.search(rf"^%?{re.escape(name)} .*?\n}}", hlo_text, re.M | re.S).group(0) for name in called]


def test_cpu_step_keeps_convolutions_out_of_ynnpack_and_its_results(monkeypatch):
    options = xla_cpu.compiler_options()
    if not options:
        pytest.skip("this jaxlib or backend takes no library-fusion option")
    tuned, state, inputs = compiled_step()
    bodies = library_fusion_bodies(tuned.as_text())
    # YNNPACK still gets BatchNorm's reductions, but no convolution.
    assert any("reduce(" in body for body in bodies)
    assert not any("convolution(" in body for body in bodies)

    monkeypatch.setattr(xla_cpu, "compiler_options", lambda: {})
    default, _, _ = compiled_step()
    # Donation consumes the state: each compiled step gets its own copy.
    copy = jax.tree.map(lambda x: x.copy(), state)
    expected = jax.device_get(default(copy, inputs, {}).params)
    got = jax.device_get(tuned(state, inputs, {}).params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, expected)


def test_a_users_xla_flags_win_over_the_options(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", f"--{xla_cpu.LIBRARY_FUSIONS_OPTION}=")
    xla_cpu.compiler_options.cache_clear()
    try:
        assert xla_cpu.compiler_options() == {}
    finally:
        monkeypatch.undo()
        xla_cpu.compiler_options.cache_clear()
