"""The benchmark command, and the PyTorch twins it compares against (when PyTorch is installed)."""

import json
import signal
import subprocess
import sys

import pytest
from flax import nnx
from run_helpers import environment

from flax_resnets.errors import InputError
from flax_resnets.models import count_parameters, create_model
from flax_resnets.runs.summary import format_table

BENCHMARK = [sys.executable, "-m", "flax_resnets", "benchmark"]


@pytest.mark.slow
def test_benchmark_prints_and_writes_a_row_per_model_and_batch(tmp_path, capsys):
    from flax_resnets.commands import benchmark

    out = tmp_path / "bench.json"
    argv = [
        *("--models=resnet8", "--batch_sizes=4,8", "--steps=2", "--rounds=1", "--warmup=1"),
        *("--steps_per_call=2", "--compare_torch"),
        f"--json={out}",
    ]
    assert benchmark.main(argv) == 0
    printed = capsys.readouterr().out
    written = json.loads(out.read_text())
    rows = written["rows"]
    assert [(r["model"], r["batch"]) for r in rows] == [("resnet8", 4), ("resnet8", 8)]
    for row in rows:
        assert (
            row["train img/s"] > 0 and row["eval img/s"] > 0 and row["compile s"] > 0 and row["peak GB"] > 0
        )
        assert row["torch img/s"] > 0  # the PyTorch twin ran the same step
    assert written["device"] and written["commit"] and written["versions"]["torch"]
    assert "train img/s" in printed


@pytest.mark.slow
def test_benchmark_sums_the_images_of_seeds_and_of_cells_sharing_the_device(tmp_path, compile_cache):
    out = tmp_path / "bench.json"
    command = [
        *(*BENCHMARK, "--models=resnet8", "--batch_sizes=4", "--num_seeds=1,2", "--parallel=1,2"),
        *("--steps=2", "--rounds=1", "--warmup=1", f"--json={out}"),
    ]
    # Its cells' processes compile what the first process compiled: the cache serves them.
    env = environment(compile_cache)
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads(out.read_text())
    assert [(r["seeds"], r["train img/s"] > 0) for r in written["rows"]] == [(1, True), (2, True)]
    cells = [(r["seeds"], r["cells"]) for r in written["cells_rows"]]
    assert cells == [(1, 1), (2, 1), (1, 2), (2, 2)]
    for row in written["cells_rows"]:
        assert row["train img/s"] == pytest.approx(row["cells"] * row["per cell"]) and row["per cell"] > 0
    assert "cells  train img/s  per cell" in result.stdout


def test_a_failing_process_of_several_ends_the_others_waiting_for_it_and_is_named(monkeypatch):
    """The others would wait at the barrier for the one that failed (a crash, out of memory)."""
    from flax_resnets.commands import benchmark

    started, real_popen = [], subprocess.Popen
    stand_ins = ["import sys; sys.exit('out of device memory')", "import time; time.sleep(3600)"]

    def popen(command, **kwargs):  # the K processes, in their order: the first fails, the second waits
        started.append(real_popen([sys.executable, "-c", stand_ins[len(started)]], **kwargs))
        return started[-1]

    monkeypatch.setattr(benchmark.subprocess, "Popen", popen)
    with pytest.raises(InputError, match="a benchmark process of --parallel=2 failed: out of device memory"):
        benchmark.cells_rows(["--models=resnet8"], 2)
    assert [process.returncode for process in started] == [1, -signal.SIGKILL]


@pytest.mark.parametrize("name", ["resnet20", "resnet50", "plain20", "vgg19", "alexnet"])
def test_pytorch_twins_have_the_same_parameter_count(name):
    torch_reference = pytest.importorskip(
        "flax_resnets.twins.torch_models", reason="PyTorch is optional: pip install -e '.[bench]'"
    )
    twin = torch_reference.torch_model(name, input_channels=1, num_classes=100)
    flax_model = nnx.eval_shape(lambda: create_model(name, num_classes=100, input_channels=1))
    assert sum(p.numel() for p in twin.parameters()) == count_parameters(flax_model)


def test_table_cells_show_accuracies_as_percentages_and_small_numbers_with_two_decimals():
    table = format_table(
        [
            {"model": "resnet8", "test acc": 0.91234, "flax/torch": 0.6666, "img/s": 1234.56, "GB": None},
            {"model": "vgg19", "test acc": 0.5, "flax/torch": 1.0, "img/s": 2.0, "GB": 1.5},
        ]
    )
    header, rule, first, second = table.splitlines()
    assert header.split() == ["model", "test", "acc", "flax/torch", "img/s", "GB"]
    assert first.split() == ["resnet8", "91.23%", "0.67", "1,234.6", "-"]
    assert second.split() == ["vgg19", "50.00%", "1.00", "2.00", "1.50"]


@pytest.mark.slow
def test_a_rows_rates_are_its_images_over_the_median_call_on_the_clock(monkeypatch):
    """Timed on a clock that advances a quarter second per reading: every call lasts 0.25 s, so
    each rate is exactly the images of one call (members and steps per call included) over it."""
    import argparse
    import itertools

    from flax_resnets.commands import benchmark

    ticks = itertools.count()
    monkeypatch.setattr(benchmark.time, "perf_counter", lambda: next(ticks) * 0.25)
    args = argparse.Namespace(
        warmup=1, steps=3, rounds=2, dtype="float32", steps_per_call=2, input_channels=3,
        compare_torch=True,
    )  # fmt: skip
    row = benchmark.benchmark_row(args, "resnet8", 4, 1)
    assert row["compile s"] == 0.25
    assert row["train img/s"] == 4 * 2 / 0.25 and row["eval img/s"] == 4 / 0.25
    assert row["torch img/s"] == 4 / 0.25 and row["flax/torch"] == 2.0  # torch's step is one step a call
    two_members = benchmark.benchmark_row(args, "resnet8", 4, 2)
    assert two_members["train img/s"] == 2 * 4 * 2 / 0.25  # summed over the members
    assert two_members["torch img/s"] is None  # PyTorch's step is one seed's: nothing to compare
