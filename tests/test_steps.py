"""The optimizer, schedules and loss options of the training step, and test-time flips."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from flax_resnets.config import default_config
from flax_resnets.models import create_model
from flax_resnets.training import steps


def test_the_papers_schedule_is_torchs_cosine_annealing_over_50_epochs_stepped_once_per_epoch():
    torch = pytest.importorskip("torch")
    config = default_config()  # 20 epochs, T_max = 50
    schedule = steps.make_schedule(config, total_steps=20 * 10)  # 10 steps per epoch
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.learning_rate)
    annealing = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=50)
    expected = []
    for _ in range(config.num_epochs):
        expected += [optimizer.param_groups[0]["lr"]] * 10
        optimizer.step()
        annealing.step()
    assert [float(schedule(step)) for step in range(200)] == pytest.approx(expected, rel=1e-6)  # float32
    # docs/recipe.md: 1.0e-3 in epoch 1, 9.22e-4 in epoch 10, 6.84e-4 in epoch 20, never near 0.
    epochs = [float(schedule(10 * (e - 1))) for e in (1, 10, 20)]
    assert epochs == pytest.approx([1e-3, 9.22e-4, 6.84e-4], rel=2e-3)


def test_a_period_of_zero_is_the_whole_run_and_cosine_updates_every_step():
    config = default_config()
    config.update(schedule="cosine", cosine_period_epochs=0, num_epochs=4)
    schedule = steps.make_schedule(config, total_steps=100)
    assert [float(schedule(s)) for s in (0, 50, 100)] == pytest.approx([1e-3, 5e-4, 0.0], abs=1e-9)
    config.cosine_period_epochs = 8  # twice the run: halfway down the curve at the end
    schedule = steps.make_schedule(config, total_steps=100)
    assert float(schedule(100)) == pytest.approx(5e-4, rel=1e-6) and float(schedule(1)) < 1e-3


def test_multistep_divides_by_ten_at_half_and_three_quarters_of_the_run():
    config = default_config()
    config.update(schedule="multistep", learning_rate=0.1)
    schedule = steps.make_schedule(config, total_steps=100)
    values = [float(schedule(s)) for s in (0, 49, 50, 74, 75, 99)]
    assert values == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rel=1e-6)


def test_onecycle_rises_linearly_over_the_warmup_epochs_then_falls_to_zero():
    config = default_config()
    config.update(schedule="onecycle", learning_rate=0.4, warmup_epochs=2.0, num_epochs=10)
    schedule = steps.make_schedule(config, total_steps=100)  # 10 steps per epoch
    values = [float(schedule(s)) for s in (0, 10, 20, 60, 100)]
    assert values == pytest.approx([0.0, 0.2, 0.4, 0.2, 0.0], abs=1e-6)


def test_weight_decay_on_kernels_only_leaves_biases_and_batch_norm_alone():
    params = nnx.state(create_model("vgg19"), nnx.Param)
    config = default_config(model="vgg19")
    config.update(weight_decay=0.1, momentum=0.0, learning_rate=1.0, weight_decay_kernels_only=True)
    optimizer, _ = steps.make_optimizer(config, total_steps=10)
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    updates, _ = optimizer.update(zero_grads, optimizer.init(params), params)
    flat = {"/".join(map(str, path)): value for path, value in nnx.to_flat_state(updates)}
    for name, update in flat.items():
        decayed = not np.allclose(update[...], 0)
        assert decayed == name.endswith("kernel"), name
    assert any(name.endswith("conv/bias") for name in flat)  # VGG's convolutions have biases


def test_label_smoothing_moves_the_target_towards_uniform():
    logits = jnp.array([[2.0, 0.0, -1.0]])
    labels = jnp.array([0])
    log_probs = jax.nn.log_softmax(logits)[0]
    smoothed = 0.9 * -log_probs[0] + 0.1 * -log_probs.mean()
    assert float(steps.cross_entropy(logits, labels, 0.1)[0]) == pytest.approx(float(smoothed), rel=1e-6)
    assert float(steps.cross_entropy(logits, labels)[0]) == pytest.approx(float(-log_probs[0]), rel=1e-6)


def test_flipped_evaluation_averages_the_logits_of_an_image_and_its_mirror():
    model = create_model("resnet8", num_classes=3, input_channels=1)
    graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    model_state = {"params": params, "batch_stats": batch_stats}
    images = jax.random.normal(jax.random.key(0), (2, 32, 32, 1))
    labels = jnp.array([0, 2])
    batch = {"image": images, "label": labels, "mask": jnp.array([True, True])}
    flipped = steps.eval_step(graphdef, model_state, batch, flip=True)
    logits = (model(images) + model(images[:, :, ::-1])) / 2
    expected_loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).sum()
    assert float(flipped["loss"]) == pytest.approx(float(expected_loss), rel=1e-5)
    assert float(steps.eval_step(graphdef, model_state, batch)["loss"]) != pytest.approx(float(expected_loss))
