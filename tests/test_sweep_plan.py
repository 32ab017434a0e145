"""The sweep's plan: estimates from measured rates, cells packed so that every one started finishes."""

import json
import math
import re

import pytest

from flax_resnets.checks import with_overrides
from flax_resnets.commands import sweep, sweep_plan
from flax_resnets.commands.sweep_plan import MOST_SEEDS, Estimate, Plan, Rates, cell_work, make_plan, pack
from flax_resnets.config import cell_config
from flax_resnets.errors import InputError


def rates_file(tmp_path, rows, cells_rows=()):
    """A ``benchmark --json`` file holding ``rows`` (model, batch, seeds, train, eval, compile)."""
    path = tmp_path / "rates.json"
    result = {
        "device": "Test GPU",
        "device_count": 1,
        "rows": [
            {
                "model": m,
                "batch": b,
                "seeds": s,
                "dtype": "float32",
                "train img/s": t,
                "eval img/s": e,
                "compile s": c,
            }
            for m, b, s, t, e, c in rows
        ],
        "cells_rows": [
            {"model": m, "batch": b, "seeds": s, "cells": k, "per cell": r} for m, b, s, k, r in cells_rows
        ],
    }
    path.write_text(json.dumps(result))
    return path


def work(cell, **changes):
    config = cell_config(cell)
    config.update(**changes)
    return cell_work(cell, config)


def test_an_estimate_is_startup_compilation_training_and_evaluation(tmp_path):
    rates = Rates.read(rates_file(tmp_path, [("resnet18", 16, 1, 1000.0, 2000.0, 5.0)]))
    fashion = work("fashion_mnist_resnet18")
    # 60,000 images, 12,000 held out: 3,000 batches of 16 a member and epoch; 12,000 validation
    # and 10,000 test images padded to whole evaluation batches of 256.
    assert (fashion.train_images, fashion.validation_images, fashion.test_images) == (48_000, 12_032, 10_240)
    estimate = rates.estimate(fashion, seeds=1, cells=1)
    expected = sweep_plan.STARTUP_SECONDS + 2 * 5.0 + 20 * 48_000 / 1000 + (20 * 12_032 + 10_240) / 2000
    assert estimate.seconds == pytest.approx(expected)
    # Without a measured sharing, two seeds cost two runs' images at the one-seed rate.
    two = rates.estimate(fashion, seeds=2, cells=1)
    assert two.seconds - sweep_plan.STARTUP_SECONDS - 10 == pytest.approx(2 * (expected - 40))
    assert "assumed to cost as many runs" in two.basis
    # An evaluation step measured faster than twice the training step counts at twice it.
    fast_eval = Rates.read(rates_file(tmp_path, [("resnet18", 16, 1, 1000.0, 9000.0, 5.0)]))
    assert fast_eval.estimate(fashion, seeds=1, cells=1).seconds == pytest.approx(expected)
    # A quick check of 1,600 images: as many validated and tested (1,792 in batches of 256).
    shorter = rates.estimate(work("fashion_mnist_resnet18", train_images=1600, num_epochs=2), 1, 1)
    assert shorter.seconds == pytest.approx(40 + 2 * 1600 / 1000 + (2 * 1792 + 1792) / 2000)


def test_sharing_measured_on_one_model_carries_to_another_and_flops_only_ever_slow_a_guess(tmp_path):
    rows = [("resnet18", 16, 1, 1000.0, 2000.0, 5.0), ("resnet18", 16, 3, 2400.0, 4000.0, 6.0)]
    rows.append(("vgg19", 16, 1, 500.0, 1500.0, 4.0))
    rates = Rates.read(rates_file(tmp_path, rows, cells_rows=[("resnet18", 16, 1, 2, 800.0)]))
    vgg = work("cifar10_vgg19")
    assert rates.cell_rates(vgg, 3, 1)[0] == pytest.approx(500 * 2.4)
    assert rates.cell_rates(vgg, 1, 2)[0] == pytest.approx(500 * 0.8)
    assert rates.cell_rates(work("cifar10_resnet18"), 3, 1)[0] == pytest.approx(2400)  # its own
    assert rates.cell_rates(vgg, 3, 2)[0] == pytest.approx(500 / 2)  # not measured: as many runs
    assert "measured on resnet18" in rates.estimate(vgg, 3, 1).basis
    # resnet50 (not measured) from resnet18 by FLOPs, slower; alexnet (fewer FLOPs) no faster.
    resnet50 = rates.cell_rates(work("cifar10_resnet50"), 1, 1)[0]
    assert 300 < resnet50 < 1000
    assert rates.cell_rates(work("cifar10_alexnet"), 1, 1)[0] == pytest.approx(1000)
    assert "(FLOPs)" in rates.estimate(work("cifar10_resnet50"), 1, 1).basis


class FixedRates:
    """Rates where a cell costs 10 s plus its seconds per seed, however many cells share."""

    def __init__(self, per_seed):
        self.per_seed = per_seed

    def estimate(self, work, seeds, cells):
        return Estimate(10 + self.per_seed[work.cell] * seeds, "fixed")


def test_the_plan_packs_longest_first_and_lowers_seeds_before_it_leaves_a_cell_out():
    per_seed = {"cifar10_alexnet": 100, "cifar10_vgg19": 60, "cifar10_resnet18": 40, "cifar10_resnet50": 500}
    works = [work(cell) for cell in per_seed]
    plan = make_plan(works, FixedRates(per_seed), num_seeds=3, parallel=2, budget=250)
    assert plan.cells_at_once == 2
    planned = [(p.cell, p.seeds, p.slot, p.start, p.end) for p in plan.planned]
    # 2 seeds each rather than 2, 3 and 1 (as many seeds, and each cell has a spread).
    assert planned == [
        ("cifar10_alexnet", 2, 0, 0, 210),
        ("cifar10_vgg19", 2, 1, 0, 130),
        ("cifar10_resnet18", 2, 1, 130, 220),
    ]
    assert all(p.end <= 250 for p in plan.planned)
    assert plan.left_out == [
        ("cifar10_resnet50", "needs 510 s with 1 seed and its slot is free from 0 s of 250")
    ]
    assert plan.notes == [
        "cifar10_alexnet: 3 seeds lowered to 2: with 3 it would end at 310 s",
        "cifar10_vgg19: 3 seeds lowered to 2: with 3 it would end at 190 s",
        "cifar10_resnet18: 3 seeds lowered to 2: with 3 it would end at 260 s",
    ]
    # One slot fits the same three cells with one seed each.
    one_slot = make_plan(works, FixedRates(per_seed), 3, 1, 250)
    assert [(p.cell, p.seeds) for p in one_slot.planned] == [
        ("cifar10_alexnet", 1),
        ("cifar10_vgg19", 1),
        ("cifar10_resnet18", 1),
    ]
    # The search leaves out the caps on seeds that cannot change or better the plan: the best of all.
    for seeds, slots, budget in ((5, 3, 250), (9, 2, 900), (4, 4, math.inf)):
        caps = [(cells, most) for cells in range(1, slots + 1) for most in range(seeds, 0, -1)]
        every = [pack(works, FixedRates(per_seed), seeds, most, cells, budget) for cells, most in caps]
        assert make_plan(works, FixedRates(per_seed), seeds, slots, budget) == max(every, key=Plan.rank)
    with pytest.raises(InputError, match=f"--num_seeds={MOST_SEEDS + 1}: a cell trains at most {MOST_SEEDS}"):
        make_plan(works, FixedRates(per_seed), MOST_SEEDS + 1, 2, math.inf)  # once, it ran for minutes


def data_of_both(tmp_path):
    """--data for CIFAR-10 and Fashion-MNIST: a folder (read by the cells, which these tests never start)."""
    return ["--data", f"cifar10={tmp_path}", f"fashion_mnist={tmp_path}"]


def test_a_dry_run_prints_the_plan_and_starts_nothing(tmp_path, capsys):
    path = rates_file(tmp_path, [("resnet18", 16, 1, 1000.0, 2000.0, 5.0)])
    root = tmp_path / "sweep"
    args = ["--cells=cifar10_resnet18,fashion_mnist_resnet18", f"--workdir_root={root}", f"--rates={path}"]
    args += data_of_both(tmp_path)
    assert sweep.main([*args, "--budget_seconds=1200", "--num_seeds=3", "--dry_run"]) == 0
    printed = capsys.readouterr().out
    assert "plan for 1200 s on Test GPU x1, 1 cell(s) at once (estimates):" in printed
    assert re.search(r"fashion_mnist_resnet18: 1 seed\(s\), slot 1, 0-\d+ s", printed)
    assert "cifar10_resnet18: left out, needs" in printed
    assert not root.exists()


def test_a_dry_run_of_table1_costs_the_cells_it_has_data_for_and_names_the_others(tmp_path, capsys):
    """No --rates: the committed H100 rates; the CIFAR datasets neither given nor prepared for TFDS
    (downloading off): their ten cells left out, with how to give their data."""
    argv = ["--cells=table1", "--dry_run", "--budget_seconds=540", "--num_seeds=3"]
    argv += ["--data", f"fashion_mnist={tmp_path}", "--", "--config.download=False"]
    assert sweep.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"rates: {sweep.COMMITTED_RATES} (one H100)" in printed
    assert all(cell in printed for cell in sweep.table1.CELLS)
    for dataset in ("cifar10", "cifar100"):
        cells = ", ".join(cell for cell in sweep.table1.CELLS if cell.startswith(f"{dataset}_"))
        assert f"{cells}: left out, no data: Dataset '{dataset}' is not prepared" in printed
        assert f"Or give --data {dataset}=FILE.npz" in printed
    costs = re.findall(r"^  (fashion_mnist_\w+): ([\d,]+) s$", printed, re.MULTILINE)
    assert [cell for cell, _ in costs] == [c for c in sweep.table1.CELLS if c.startswith("fashion_mnist_")]
    total = sum(float(seconds.replace(",", "")) for _, seconds in costs)
    calls = -(-total // 540)
    in_all = rf"in all 5 cell\(s\), [\d,]+ s \([\d.]+ h\): at least {calls:.0f} call\(s\) of 540 s"
    assert re.search(in_all, printed)


def test_the_sweep_starts_planned_cells_only_with_their_seeds_and_none_past_its_budget(
    tmp_path, monkeypatch, capsys
):
    started = []

    class Done:
        returncode = 0

        def poll(self):
            return 0

    def start_cell(cell, workdir, log, command, env):
        started.append((cell, [flag for flag in command if "num_seeds" in flag]))
        return sweep.CellProcess(cell, workdir, log, Done(), 0.0)

    monkeypatch.setattr(sweep, "start_cell", start_cell)
    monkeypatch.setattr(sweep, "report_finished", lambda finished, results: True)
    monkeypatch.setattr(sweep.table1, "main", lambda argv: 0)
    path = rates_file(tmp_path, [("resnet18", 16, 1, 1000.0, 2000.0, 5.0)])
    args = [f"--workdir_root={tmp_path / 'sweep'}", f"--rates={path}", f"--results={tmp_path / 'results'}"]
    args += data_of_both(tmp_path)
    cells = "--cells=cifar10_resnet18,fashion_mnist_resnet18"
    # 1,125 s for fashion_mnist_resnet18 with 1 seed (2,211 s with 2), 948 s for cifar10_resnet18:
    # 2,300 s fit both with 1 seed rather than one with 2.
    assert sweep.main([cells, *args, "--budget_seconds=2300", "--num_seeds=2"]) == 0
    assert started == [("fashion_mnist_resnet18", []), ("cifar10_resnet18", [])]
    assert "fashion_mnist_resnet18: 2 seeds lowered to 1" in capsys.readouterr().out
    started.clear()
    assert sweep.main([cells, *args, "--budget_seconds=3200", "--num_seeds=2"]) == 0
    assert started == [("fashion_mnist_resnet18", ["--config.num_seeds=2"]), ("cifar10_resnet18", [])]

    # A budget that has run down below a cell's estimate by the time its turn comes: not started.
    started.clear()
    monkeypatch.setattr(sweep.Budget, "remaining", lambda self: 100.0)
    assert sweep.main([cells, *args, "--budget_seconds=2300", "--num_seeds=2"]) == 0
    assert started == []
    assert re.search(
        r"fashion_mnist_resnet18: not started, its estimated \d+ s exceed the 100 s left",
        capsys.readouterr().out,
    )


def test_overrides_apply_as_the_trainer_reads_them_and_bad_ones_are_refused_before_any_work(tmp_path):
    config = with_overrides(
        cell_config("cifar10_vgg19"),
        [
            "--config.model=resnet8",
            "--config.num_epochs=2",
            "--config.augment=false",
            "--config.learning_rate=0.1",
        ],
    )
    assert (config.model, config.num_epochs, config.augment, config.learning_rate) == (
        "resnet8",
        2,
        False,
        0.1,
    )
    assert cell_config("cifar10_vgg19").model == "vgg19"  # the cell's own config is untouched
    for flag, message in (
        ("--config.num_epoch=2", "the config has no field 'num_epoch'"),
        ("--config.num_epochs=two", "'two' is not a valid int for config.num_epochs"),
        ("--config.augment=maybe", "'maybe' is not a valid bool for config.augment"),
        ("--config.batch_size=0", "config.batch_size must be positive"),  # before any plan divides by it
    ):
        with pytest.raises(InputError, match=re.escape(message)):
            sweep.main(
                [
                    "--cells=cifar10_resnet18",
                    f"--workdir_root={tmp_path / 'sweep'}",
                    "--budget_seconds=10",
                    "--",
                    flag,
                ]
            )
    assert not (tmp_path / "sweep").exists()


def test_rates_that_are_not_a_benchmarks_or_miss_the_batch_or_dtype_are_refused(tmp_path, monkeypatch):
    not_rates = tmp_path / "other.json"
    not_rates.write_text(json.dumps({"rows": []}))
    with pytest.raises(InputError, match="holds no benchmark rates"):
        Rates.read(not_rates)
    rates = Rates.read(rates_file(tmp_path, [("resnet18", 128, 1, 1000.0, 2000.0, 5.0)]))
    with pytest.raises(
        InputError, match=re.escape("no one-seed rate at batch 16 (cifar10_vgg19; it measured batches [128])")
    ):
        rates.estimate(work("cifar10_vgg19"), 1, 1)
    with pytest.raises(InputError, match="measured float32, not bfloat16"):
        rates.estimate(work("cifar10_resnet18", dtype="bfloat16", batch_size=128), 1, 1)
    # Rates a plan cannot rest on: the file is named, nothing is planned with them.
    good = {"model": "resnet18", "batch": 16, "dtype": "float32", "train img/s": 1000.0, "compile s": 5.0}
    for change in (
        {"train img/s": -1000.0}, {"train img/s": 0}, {"train img/s": float("nan")}, {"compile s": "5"},
        {"batch": "16"}, {"eval img/s": -2.0}, {"model": "resnet19"},
    ):  # fmt: skip
        bad = tmp_path / "bad_rates.json"
        bad.write_text(json.dumps({"rows": [{**good, **change}]}))
        with pytest.raises(InputError, match=re.escape(f"--rates={bad}")):
            Rates.read(bad)
    monkeypatch.setattr(sweep, "COMMITTED_RATES", tmp_path / "none.json")  # an installed package's case
    with pytest.raises(InputError, match="--dry_run plans from measured rates: give --rates=FILE"):
        sweep.main(["--cells=cifar10_resnet18", f"--workdir_root={tmp_path}", "--dry_run"])
