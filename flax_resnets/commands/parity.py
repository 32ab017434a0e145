"""``python -m flax_resnets parity``: show that each Flax model computes what its PyTorch twin computes.

From one set of weights, on the same batches and dropout masks: the logits, the loss, ``--steps``
steps of the paper's optimizer (every parameter, update and BatchNorm statistic after), in float32
(within ``NOISE_FACTOR`` x PyTorch's own float32 error plus ``FLOOR``) and float64; the schedule over
40 epochs; fresh initialisations by their RMS. Exit status 0 when every model passes. The five
default models take about 10 minutes on 2 CPU cores (614 s measured); fewer ``--models``, less.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from flax import nnx

from flax_resnets.checks import seed_argument
from flax_resnets.cli import command_parser, positive_int
from flax_resnets.commands import parity_train
from flax_resnets.config import default_config
from flax_resnets.data.arrays import IMAGE_SIZE, Dataset, Split
from flax_resnets.data.images import model_inputs
from flax_resnets.data.order import epoch_permutation
from flax_resnets.errors import InputError
from flax_resnets.models import named_arrays, require_models
from flax_resnets.models.layers import dropout_mask
from flax_resnets.models.vgg import DROPOUT_RATE
from flax_resnets.runs.summary import format_table
from flax_resnets.runtime import members, parallel
from flax_resnets.training import steps
from flax_resnets.training.programs import build_programs

QUANTITIES = ("logits train", "loss", "params", "updates", "running stats", "logits eval")
FORWARD_QUANTITIES = ("logits train", "loss")  # before any step: no rounding has been trained in yet
FLOAT64_TOLERANCE = 1e-8
SCHEDULE_TOLERANCE = 1e-6
SCALE_FLOOR = 1e-6
SCHEDULE_EPOCHS = 40
NOISE_FACTOR = 10.0
FLOOR = 4e-6
Arrays = dict[tuple[str, ...], np.ndarray]


def relative_difference(ours: Mapping, theirs: Mapping) -> float:
    """The worst tensor's max |ours - theirs| / max |theirs|, the scale floored at
    ``SCALE_FLOOR`` x the largest tensor's (the plain difference where all are 0)."""
    references = {key: np.asarray(value, np.float64) for key, value in theirs.items()}
    scales = {key: float(np.max(np.abs(ref))) if ref.size else 0.0 for key, ref in references.items()}
    floor = SCALE_FLOOR * max(scales.values(), default=0.0)
    worst = 0.0
    for key, reference in references.items():
        diff = float(np.max(np.abs(np.asarray(ours[key], np.float64) - reference))) if reference.size else 0.0
        scale = max(scales[key], floor)
        worst = max(worst, diff / scale if scale else diff)
    return worst


def compare_outcomes(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
    """Relative differences of two runs' results, quantity by quantity (see ``QUANTITIES``)."""
    return {
        "logits train": relative_difference({0: ours["logits train"]}, {0: theirs["logits train"]}),
        "loss": abs(ours["loss"] - theirs["loss"]) / abs(theirs["loss"]),
        "params": relative_difference(ours["params"], theirs["params"]),
        "updates": relative_difference(ours["updates"], theirs["updates"]),
        "running stats": relative_difference(ours["running stats"], theirs["running stats"]),
        "logits eval": relative_difference({0: ours["logits eval"]}, {0: theirs["logits eval"]}),
    }


def layer_kind(path: tuple[str, ...], arrays: Arrays) -> str:
    """'conv kernel', 'conv bias', 'linear kernel', 'linear bias', 'batchnorm scale' or 'batchnorm bias'."""
    *prefix, leaf = path
    if leaf == "scale" or (leaf == "bias" and (*prefix, "scale") in arrays):
        return f"batchnorm {leaf}"
    kernel = arrays[(*prefix, "kernel")]
    return f"{'conv' if kernel.ndim == 4 else 'linear'} {leaf}"


def rms(array: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(array, dtype=np.float64))))


def init_ratios(
    flax_params: Arrays, torch_params: Arrays
) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """Per layer kind, the (lowest, highest) RMS ratio of Flax's fresh tensors over PyTorch's, and
    the tensors whose ratio is beyond sampling noise (constants must be equal)."""
    ratios: dict[str, list[float]] = {}
    failures = []
    for path, ours in flax_params.items():
        theirs = torch_params[path]
        ratio = rms(ours) / rms(theirs) if rms(theirs) else (1.0 if not rms(ours) else np.inf)
        ratios.setdefault(layer_kind(path, flax_params), []).append(ratio)
        tolerance = 1e-6 if np.ptp(theirs) == 0 else max(0.05, 6 * np.sqrt(0.2 / ours.size))
        if abs(ratio - 1) > tolerance:
            failures.append(f"{'/'.join(path)} ({ratio:.3f})")
    return {kind: (min(r), max(r)) for kind, r in sorted(ratios.items())}, failures


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def split_arrays(after: Arrays, start: Arrays) -> dict[str, Arrays]:
    stats = {k: v for k, v in after.items() if k[-1] in ("mean", "var")}
    params = {k: v for k, v in after.items() if k not in stats}
    return {
        "params": params,
        "updates": {k: np.asarray(v, np.float64) - start[k] for k, v in params.items()},
        "running stats": stats,
    }


def parity_data(config: Any, num_steps: int, channels: int, num_classes: int) -> tuple[Dataset, Any, Any]:
    """Random uint8 images and labels for ``num_steps`` batches of ``config``, and those batches as the
    feed makes them (epoch 0's order, normalised, unaugmented): what the twin is given."""
    rng = np.random.default_rng(config.seed)
    count = num_steps * config.batch_size
    pixels = rng.integers(0, 256, (count, IMAGE_SIZE, IMAGE_SIZE, channels), dtype=np.uint8)
    train = Split(pixels, rng.integers(0, num_classes, count).astype(np.int32))
    names, normalization = tuple(map(str, range(num_classes))), ((0.5,) * channels, (0.5,) * channels)
    dataset = Dataset("random", names, *normalization, train, train.take(np.arange(0)), train)
    order = epoch_permutation(count, config.seed, 0).reshape(num_steps, config.batch_size)
    return dataset, model_inputs(pixels[order], normalization), train.labels[order]


def run_flax(
    config: Any, dataset: Dataset, images: np.ndarray, labels: np.ndarray, *, float64: bool = False
) -> tuple[dict[str, Any], Arrays, np.ndarray]:
    """The trainer's programs on ``dataset``, one call of the batches' steps, in float32 or float64 (x64,
    the state cast up after initialising): the outcome, the starting arrays and the dropout key."""
    with jax.enable_x64(float64):
        config = config.copy_and_resolve_references()
        config.dtype = "float64" if float64 else "float32"
        program = build_programs(config, dataset, parallel.make_mesh())
        graphdef = program.graphdef
        (state,) = members.split(program.state, 1)
        start = {**named_arrays(state.params), **named_arrays(state.batch_stats)}
        if float64:
            state = jax.tree.map(lambda x: x.astype(np.float64) if x.dtype == np.float32 else x, state)
            images = images.astype(np.float64)

        @functools.partial(jax.jit, static_argnums=1)  # one program, not an eager call per op
        def logits(state: steps.TrainState, train: bool) -> jax.Array:
            # Merged from traced copies: a training-mode call's new running statistics stay inside.
            model = nnx.merge(graphdef, state.params, state.batch_stats)
            return model(images[0], train=train, dropout_key=steps.dropout_key(state.dropout_rng, state.step))

        outcome: dict[str, Any] = {"logits train": np.asarray(logits(state, True))}
        outcome["loss"] = cross_entropy(outcome["logits train"], labels[0])
        dropout_rng = np.asarray(state.dropout_rng)
        feed = program.feed
        inputs, num_steps = next(feed.train_calls(epoch=0, start_step=0, steps_per_call=len(images)))
        placed = parallel.place_state(members.join([state]), program.mesh)
        (state,) = members.split(program.train(placed, inputs, feed.constants("train"), num_steps), 1)
        after = {**named_arrays(state.params), **named_arrays(state.batch_stats)}
        outcome.update(split_arrays(after, start))
        outcome["logits eval"] = np.asarray(logits(state, False))
    return outcome, start, dropout_rng


def flax_dropout_masks(dropout_rng: np.ndarray, step: int) -> Any:
    """The masks the Flax training step ``step`` drops units with, as a twin's ``MaskSource``."""
    import torch

    def masks(stream: int, shape: tuple[int, ...]) -> Any:
        key = jax.random.fold_in(steps.dropout_key(dropout_rng, step), stream)
        return torch.from_numpy(np.array(dropout_mask(key, shape, DROPOUT_RATE)))

    return masks


def run_twin(
    name: str,
    start: Arrays,
    dropout_rng: np.ndarray,
    total_steps: int,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    num_classes: int,
    dtype: Any,
) -> dict[str, Any]:
    """The PyTorch twin from the same starting arrays, in ``dtype``, on the same batches, dropping
    the units the Flax steps drop."""
    import torch

    from flax_resnets.twins.torch_models import flax_layout_arrays, load_flax_weights, paper_sgd, torch_model
    from flax_resnets.twins.torch_modules import feed_dropout_masks

    twin = torch_model(name, images.shape[-1], num_classes)
    load_flax_weights(twin, start)
    twin = twin.to(dtype)
    batches = torch.from_numpy(images.transpose(0, 1, 4, 2, 3).copy()).to(dtype)
    targets = torch.from_numpy(labels.astype(np.int64))
    optimizer, schedule = paper_sgd(twin, total_steps)
    outcome: dict[str, Any] = {}
    for step in range(len(images)):
        feed_dropout_masks(twin, flax_dropout_masks(dropout_rng, step))
        optimizer.zero_grad()
        logits = twin.train()(batches[step])
        torch.nn.functional.cross_entropy(logits, targets[step]).backward()
        if step == 0:
            outcome["logits train"] = logits.detach().double().numpy()
            outcome["loss"] = cross_entropy(outcome["logits train"], labels[0])
        optimizer.step()
        schedule.step()
    outcome.update(split_arrays(flax_layout_arrays(twin, dtype=np.float64), start))
    with torch.no_grad():
        outcome["logits eval"] = twin.eval()(batches[0]).double().numpy()
    return outcome


def compare_schedule(epochs: int = SCHEDULE_EPOCHS, epoch_steps: int = 3) -> float:
    """The largest relative difference over ``epochs`` epochs between the recipe's learning rate (at
    every step) and PyTorch's ``CosineAnnealingLR`` of the recipe's period, stepped once per epoch."""
    import torch

    config = default_config()
    config.num_epochs = epochs
    _, schedule = steps.make_optimizer(config, epochs * epoch_steps)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.learning_rate)
    annealing = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.cosine_period_epochs)
    worst = 0.0
    for epoch in range(epochs):
        theirs = optimizer.param_groups[0]["lr"]
        for step in range(epoch * epoch_steps, (epoch + 1) * epoch_steps):
            worst = max(worst, abs(float(schedule(step)) - theirs) / theirs)
        optimizer.step()
        annealing.step()
    return worst


def parity_config(name: str, batch_size: int, seed: int) -> Any:
    """The paper's recipe for ``name``, but two epochs under a cosine updated every step (so the rate
    changes at each compared step) and no augmentation (the twin is given the feed's batches)."""
    config = default_config(model=name)
    config.update(
        seed=seed,
        batch_size=batch_size,
        schedule="cosine",
        cosine_period_epochs=0,
        num_epochs=2,
        augment=False,
    )
    return config


def compare_model(
    name: str, *, batch_size: int, num_steps: int, input_channels: int, num_classes: int, seed: int
) -> dict[str, Any]:
    """Run ``name`` in Flax and PyTorch, each in float32 and float64, from one set of weights."""
    import torch

    from flax_resnets.twins.torch_models import flax_layout_arrays, torch_model

    config = parity_config(name, batch_size, seed)
    total_steps = 2 * num_steps
    dataset, images, labels = parity_data(config, num_steps, input_channels, num_classes)
    flax32, start, dropout_rng = run_flax(config, dataset, images, labels)
    flax64, _, _ = run_flax(config, dataset, images, labels, float64=True)
    torch32, torch64 = (
        run_twin(name, start, dropout_rng, total_steps, images, labels, num_classes=num_classes, dtype=dtype)
        for dtype in (torch.float32, torch.float64)
    )
    float32 = compare_outcomes(flax32, torch32)
    noise = compare_outcomes(torch32, torch64)
    float64 = compare_outcomes(flax64, torch64)

    torch.manual_seed(seed)
    fresh_twin = flax_layout_arrays(torch_model(name, input_channels, num_classes))
    fresh_flax = {k: v for k, v in start.items() if k[-1] not in ("mean", "var")}
    ratios, init_failures = init_ratios(fresh_flax, fresh_twin)

    row: dict[str, Any] = {"model": name}
    failures = []
    for quantity in QUANTITIES:
        row[quantity] = f"{float32[quantity]:.1e} ({noise[quantity]:.0e}) {float64[quantity]:.0e}"
        if not float64[quantity] <= FLOAT64_TOLERANCE:
            failures.append(f"{quantity} differs by {float64[quantity]:.1e} in float64")
        limit = NOISE_FACTOR * noise[quantity] + FLOOR
        if quantity in FORWARD_QUANTITIES and not float32[quantity] <= limit:
            failures.append(f"{quantity} differs by {float32[quantity]:.1e} > {limit:.1e} in float32")
    # BatchNorm's constants (scale 1, shift 0) are checked for equality, not shown.
    row["init rms ratio"] = ", ".join(
        f"{kind} {lo:.2f}-{hi:.2f}" for kind, (lo, hi) in ratios.items() if not kind.startswith("batchnorm")
    )
    if init_failures:
        failures.append(f"initialisation differs from PyTorch's: {', '.join(init_failures[:3])}")
    row["verdict"] = "FAIL" if failures else "ok"
    return {"row": row, "failures": failures, "float32": float32, "noise": noise, "float64": float64}


def main(argv: list[str]) -> int:
    if "--train" in argv:  # whole training runs against an independent PyTorch trainer (parity_train)
        return parity_train.main([arg for arg in argv if arg != "--train"])
    parser = command_parser("parity", __doc__)
    add = parser.add_argument
    add("--models", default="alexnet,vgg19,vgg19_bn,resnet18,resnet50", help="comma-separated model names")
    add("--batch_size", type=positive_int, default=16, help="the paper's batch size")
    add("--steps", type=positive_int, default=3, help="optimizer steps compared")
    add("--input_channels", type=positive_int, default=3)
    add("--num_classes", type=positive_int, default=10)
    add("--seed", type=seed_argument, default=0)
    add("--train", action="store_true", help="compare whole training runs (--train --help)")
    args = parser.parse_args(argv)
    names = args.models.split(",")
    require_models(names)
    if args.batch_size < 2:
        raise InputError("--batch_size must be at least 2: BatchNorm needs two examples.")
    print(
        f"Flax vs PyTorch on {jax.devices()[0].device_kind}, max relative difference per cell: float32 "
        f"(PyTorch's own float32 error, against its float64) float64. Passes: float64 <= "
        f"{FLOAT64_TOLERANCE:g}; float32 before training <= {NOISE_FACTOR:g} x bracket + {FLOOR:g}.",
        flush=True,
    )
    shape = {"input_channels": args.input_channels, "num_classes": args.num_classes, "seed": args.seed}
    results = []
    for name in names:
        results.append(compare_model(name, batch_size=args.batch_size, num_steps=args.steps, **shape))
        print(format_table([results[-1]["row"]]).splitlines()[-1], flush=True)
    print(format_table([result["row"] for result in results]))
    schedule = compare_schedule()
    schedule_ok = schedule <= SCHEDULE_TOLERANCE
    print(
        f"schedule: the recipe's learning rate of {SCHEDULE_EPOCHS} epochs against torch's "
        f"CosineAnnealingLR(T_max={default_config().cosine_period_epochs}) stepped per epoch: max relative "
        f"difference {schedule:.1e} ({'ok' if schedule_ok else 'FAIL'}, limit {SCHEDULE_TOLERANCE:g})"
    )
    for result in results:
        if result["failures"]:
            print(f"{result['row']['model']}: {'; '.join(result['failures'])}", file=sys.stderr)
    return 1 if any(result["failures"] for result in results) or not schedule_ok else 0
