"""Table 1 from kept runs, and the sweep that trains cells within a time budget."""

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time

import pytest
from run_helpers import HANG_GUARD_SECONDS, environment

from flax_resnets.commands import sweep, table1
from flax_resnets.config import cell_config
from flax_resnets.data.sources import TFDS_SIZES, TFDS_STATISTICS
from flax_resnets.errors import InputError
from flax_resnets.files import WorkdirLock
from flax_resnets.runs.workdir import FINISHED_RUN_FILES, checkpoint_steps, recorded_config


def fake_run(
    folder,
    dataset,
    model,
    accuracy,
    *,
    source=None,
    finished="2026-11-27T10:00:00+00:00",
    seed_accuracies=None,
    val_accuracy=None,
    **changes,
):
    """The four small files of a finished run of ``dataset``'s cell of ``model`` on the whole
    dataset, with the cell's recipe but for ``changes`` (``seed_accuracies``: a run of several
    seeds, each with its test accuracy; ``val_accuracy``: the validation accuracy after epoch 20)."""
    classes, channels, images, test = TFDS_SIZES[dataset]
    config = cell_config(f"{dataset}_{table1.column(model)}")
    config.update(model=model, dataset=source or dataset, **changes)
    channels = config.image_channels or channels
    mean, std = (statistic * (channels // len(statistic)) for statistic in TFDS_STATISTICS[dataset])
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(config.to_json())
    seeds = seed_accuracies or [accuracy]
    validation = val_accuracy if val_accuracy is not None else accuracy
    record = {"epoch": 20, "val_accuracy": validation}
    record["seeds"] = [{"seed": k, "val_accuracy": validation} for k in range(len(seeds))]
    (folder / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    report = {"test_accuracy": accuracy, "checkpoint_step": 60000}
    report["seeds"] = [{"seed": k, "test_accuracy": a} for k, a in enumerate(seeds)]
    (folder / "eval.json").write_text(json.dumps(report))
    data = {
        "dataset": source or dataset,
        "data_dir": "/tmp/cifar10.npz" if source else None,
        "class_names": [str(i) for i in range(classes)],
        "channels": channels,
        "mean": list(mean),
        "std": list(std),
        "train": images * 4 // 5,
        "validation": images // 5,
        "test": test,
    }
    run = {"device": "NVIDIA H100", "device_count": 1, "dtype": config.dtype, "epochs": 20}
    run.update(wall_seconds=600.0, commit="0123456789abcdef", finished=finished, data=data)
    (folder / "run.json").write_text(json.dumps(run))
    return folder


def table_lines(tmp_path, capsys, folders):
    """The table of ``folders`` alone (no kept runs), written to a file and printed."""
    args = [*map(str, folders), f"--results={tmp_path / 'no_results'}", f"--out={tmp_path / 'table1.md'}"]
    assert table1.main(args) == 0
    printed = capsys.readouterr().out
    assert printed == (tmp_path / "table1.md").read_text()
    return printed.splitlines()


def row(lines, title):
    return [
        cell.strip()
        for cell in next(line for line in lines if line.startswith(f"| {title} |")).split("|")[2:-1]
    ]


def test_cells_show_ours_beside_the_papers_logged_runs_with_the_difference(tmp_path, capsys):
    runs = [
        fake_run(tmp_path / "a", "cifar10", "resnet18", 0.8841, source="image_folder"),
        fake_run(tmp_path / "b", "fashion_mnist", "vgg19", 0.9012),
        fake_run(tmp_path / "c", "cifar100", "alexnet", 0.4, num_epochs=5),
    ]
    lines = table_lines(tmp_path, capsys, runs)
    assert row(lines, "CIFAR-10") == [
        "- / 77.58",
        "- / 74.70",
        "**88.4** (1) / 89.31 (-0.9)†",
        "- / 89.58",
        "- / 89.23",
    ]
    assert row(lines, "Fashion-MNIST")[1] == "**90.1** (1) / 89.61 (+0.5)"
    assert row(lines, "CIFAR-100")[0] == "**40.0** (1) / 39.98 (+0.0)*"
    assert row(lines, "parameters, ours (10 classes)") == ["56.8M", "20.6M", "11.2M", "21.3M", "23.5M"]
    runs_shown = [line for line in lines if line.startswith("| CIFAR-100 AlexNet |")]
    assert runs_shown[0].split("|")[3].strip() == "1"  # seeds
    assert "num_epochs=5" in runs_shown[0] and "NVIDIA H100 x1" in runs_shown[0]


def test_cifar100_vgg19_shows_its_test_accuracy_and_the_validation_accuracy_table1_printed(tmp_path, capsys):
    empty = row(table_lines(tmp_path, capsys, []), "CIFAR-100")[1]
    assert empty == "- / 58.70; val. ep. 20: - / 47.9"
    run = fake_run(tmp_path / "vgg", "cifar100", "vgg19_bn", 0.587, val_accuracy=0.4812)
    lines = table_lines(tmp_path, capsys, [run])
    expected = "**58.7** (1) / 58.70 (+0.0); val. ep. 20: **48.1** (1) / 47.9 (+0.2)"
    assert row(lines, "CIFAR-100")[1] == expected
    assert any(line.startswith("| CIFAR-100 VGG19 |") and line.endswith("| none |") for line in lines)
    # VGG19 without BatchNorm is not the cell's model: shown, and marked.
    plain = fake_run(tmp_path / "plain", "cifar100", "vgg19", 0.5)
    assert row(table_lines(tmp_path, capsys, [plain]), "CIFAR-100")[1].endswith("*")


def test_a_run_of_another_recipe_is_marked_with_what_it_did_otherwise(tmp_path, capsys):
    """The kept CIFAR-10 ResNet18 run trained before the paper's code was read: shown, marked, and
    its differences from the cell's recipe listed."""
    changes = dict(normalization="data", schedule="cosine", augment_validation=False, cosine_period_epochs=0)
    run = fake_run(tmp_path / "old", "cifar10", "resnet18", 0.8687, **changes)
    lines = table_lines(tmp_path, capsys, [run])
    assert row(lines, "CIFAR-10")[2] == "**86.9** (1) / 89.31 (-2.4)*"
    shown = next(line for line in lines if line.startswith("| CIFAR-10 ResNet18 |"))
    assert shown.endswith(
        "| augment_validation=False, cosine_period_epochs=0, normalization='data', schedule='cosine' |"
    )


def test_every_cell_is_printed_when_nothing_has_run(tmp_path, capsys):
    (tmp_path / "nothing").mkdir()
    lines = table_lines(tmp_path, capsys, [tmp_path / "nothing"])
    for title in table1.DATASETS.values():
        assert len(row(lines, title)) == 5 and all(cell.startswith("- / ") for cell in row(lines, title))
    assert "is not a finished run" in "\n".join(lines)


def test_a_cell_shows_the_papers_recipe_before_a_changed_one_then_the_latest(tmp_path, capsys):
    runs = [
        fake_run(tmp_path / "old", "cifar10", "resnet34", 0.85, finished="2026-11-01T00:00:00+00:00"),
        fake_run(tmp_path / "new", "cifar10", "resnet34", 0.86, finished="2026-11-02T00:00:00+00:00"),
        fake_run(tmp_path / "bf16", "cifar10", "resnet34", 0.90, dtype="bfloat16"),
    ]
    assert row(table_lines(tmp_path, capsys, runs), "CIFAR-10")[3] == "**86.0** (1) / 89.58 (-3.6)"


def test_runs_on_part_of_a_dataset_are_left_out_with_the_reason(tmp_path, capsys):
    folders = [
        fake_run(tmp_path / "subset", "fashion_mnist", "resnet18", 0.87),
        fake_run(tmp_path / "quick", "fashion_mnist", "resnet18", 0.5, train_images=1000),
    ]
    for folder, train in zip(folders, (3200, 1000), strict=True):  # the quickstart's sample; a quick check
        record = json.loads((folder / "run.json").read_text())
        record["data"]["train"] = train
        (folder / "run.json").write_text(json.dumps(record))
    lines = table_lines(tmp_path, capsys, folders)
    assert row(lines, "Fashion-MNIST")[2] == "- / 93.38"
    assert any("subset: trained on data that is not a whole dataset of the paper" in line for line in lines)
    assert any("quick: trained with train_images=1000 (a quick check)" in line for line in lines)


def test_run_dirs_are_previewed_beside_the_kept_runs_and_nothing_is_written(tmp_path, capsys):
    results = tmp_path / "results"
    kept = table1.keep(fake_run(tmp_path / "kept", "cifar10", "resnet18", 0.8687), results)
    table1.main([f"--results={results}"])
    written = (results / "table1.md").read_bytes()
    capsys.readouterr()
    new = fake_run(tmp_path / "new", "fashion_mnist", "vgg19", 0.9012)
    damaged = fake_run(tmp_path / "damaged", "cifar10", "vgg19", 0.8)
    (damaged / "eval.json").write_text('{"test_accuracy": ')
    assert table1.main([str(new), str(damaged), f"--results={results}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert row(lines, "CIFAR-10")[2].startswith("**86.9**")  # kept
    assert row(lines, "Fashion-MNIST")[1].startswith("**90.1**")  # given
    reason = f"{damaged}: its files cannot be read (InputError: {damaged / 'eval.json'} cannot be read"
    assert any(reason in line for line in lines)
    assert (results / "table1.md").read_bytes() == written and kept.is_dir()


def test_keep_copies_the_small_files_into_a_folder_of_the_run_in_its_cell(tmp_path):
    workdir = fake_run(tmp_path / "workdir", "cifar10", "vgg19", 0.8)
    (workdir / "checkpoints").mkdir()
    kept = table1.keep(workdir, tmp_path / "results")
    assert kept == tmp_path / "results" / "runs" / "cifar10_vgg19" / "paper_recipe_seed0_20261127100000"
    assert sorted(p.name for p in kept.iterdir()) == sorted(FINISHED_RUN_FILES)
    assert all((kept / name).read_bytes() == (workdir / name).read_bytes() for name in FINISHED_RUN_FILES)


def tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


def test_a_cell_keeps_several_runs_and_the_table_chooses_by_its_rule(tmp_path, capsys):
    """A second run of a cell is kept beside the first, never over it; the table shows the cell's
    recipe before a changed one, then the latest; keeping a kept run again changes nothing."""
    results = tmp_path / "results"
    recipe = table1.keep(fake_run(tmp_path / "a", "cifar10", "resnet18", 0.80), results)
    changed = fake_run(
        tmp_path / "b", "cifar10", "resnet18", 0.95, finished="2026-11-28T10:00:00+00:00", learning_rate=0.05
    )
    changed = table1.keep(changed, results)
    later = fake_run(tmp_path / "c", "cifar10", "resnet18", 0.85, finished="2026-11-29T10:00:00+00:00")
    later = table1.keep(later, results)
    assert changed.name == "learning_rate=0.05_seed0_20261128100000"
    # Two runs of long recipes that differ in their first change only: readable, and kept apart.
    tail = dict(eval_flip=True, label_smoothing=0.1, momentum=0.8, nesterov=True, warmup_epochs=2)
    tail.update(weight_decay=0.001, learning_rate=0.05, split_seed=3, validation_fraction=0.1)
    long_ones = [
        fake_run(tmp_path / f"long{k}", "cifar10", "resnet18", 0.9, cosine_period_epochs=k, **tail)
        for k in (7, 8)
    ]
    long_ones = [table1.keep(workdir, results) for workdir in long_ones]
    assert [p.name[:24] for p in long_ones] == ["cosine_period_epochs=7+e", "cosine_period_epochs=8+e"]
    assert long_ones[0] != long_ones[1] and all(len(p.name) <= 140 for p in long_ones)
    assert len({recipe, changed, later}) == 3 and all(p.parent == recipe.parent for p in (changed, later))
    before = tree(results)
    assert table1.keep(later, results) == later and table1.keep(tmp_path / "c", results) == later
    assert tree(results) == before
    table1.main([f"--results={results}", f"--out={tmp_path / 'table1.md'}"])
    assert row(capsys.readouterr().out.splitlines(), "CIFAR-10")[2].startswith("**85.0**")


def test_a_keep_that_fails_midway_leaves_the_results_as_they_were(tmp_path, monkeypatch, capsys):
    """A full disk (or a file-size limit) on the third file: nothing of the new run appears, the
    cell's kept run is untouched, and the refusal names the system's reason in one line."""
    results = tmp_path / "results"
    table1.keep(fake_run(tmp_path / "a", "cifar10", "resnet18", 0.80), results)
    before = tree(results)
    real_open, opened = open, []

    def failing_open(path, *args, **kwargs):
        if str(path).startswith(str(results)) and "b" in str(args[:1]):
            opened.append(path)
            if len(opened) == 3:
                raise OSError(27, "File too large", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    newer = fake_run(tmp_path / "b", "cifar10", "resnet18", 0.90, finished="2026-11-28T10:00:00+00:00")
    with pytest.raises(SystemExit) as exit_info:
        from flax_resnets.cli import run_command

        run_command(table1.main, [f"--results={results}", "--keep", str(newer)])
    monkeypatch.undo()
    assert exit_info.value.code == 2 and len(opened) == 3
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "(File too large): nothing was written" in error[0]
    assert tree(results) == before


@pytest.mark.slow
def test_the_sweep_keeps_finished_cells_and_stops_the_rest_at_the_budget(
    tmp_path, image_folder, monkeypatch, capsys
):
    """A GPU sweep tried on a CPU: a tiny model on a tiny folder stands in for a cell; CIFAR-100's
    cells, without data here, are left out."""
    monkeypatch.setattr(table1, "paper_dataset", lambda run: "fashion_mnist")  # the folder is no dataset
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    tiny = ["--config.model=resnet8", "--config.batch_size=8", "--config.eval_batch_size=16"]
    args = [
        "--cells=fashion_mnist_resnet18,cifar100",
        "--data",
        f"fashion_mnist={image_folder}",
        f"--workdir_root={tmp_path / 'sweep'}",
        "--budget_seconds=86400",  # a limit, never reached: not a verdict
        f"--results={tmp_path / 'results'}",
        f"--tar={tmp_path / 'out' / 'table1_runs.tar.gz'}",
        "--num_seeds=2",
        "--",
        *tiny,
        "--config.num_epochs=1",
        "--config.download=False",
    ]
    assert sweep.main(args) == 0
    left_out = "cifar100_alexnet, cifar100_vgg19, cifar100_resnet18, cifar100_resnet34, cifar100_resnet50"
    assert f"{left_out}: left out, no data" in capsys.readouterr().out
    (kept,) = (tmp_path / "results" / "runs" / "fashion_mnist_resnet8").iterdir()
    report = json.loads((kept / "eval.json").read_text())
    assert report["num_examples"] == 12 and [m["seed"] for m in report["seeds"]] == [0, 1]
    with tarfile.open(tmp_path / "out" / "table1_runs.tar.gz") as tar:
        names = tar.getnames()
    assert "results/table1.md" in names
    assert f"results/runs/fashion_mnist_resnet8/{kept.name}/run.json" in names
    assert "logs/fashion_mnist_resnet18.log" in names


class BudgetUntil(sweep.Budget):
    """A budget that runs out when ``event()`` becomes true, whatever the clock says: the tests'
    verdicts never depend on how fast this machine starts or trains a cell."""

    def __init__(self, event):
        self.event = event

    def remaining(self):
        return 0.0 if self.event() else float("inf")


@pytest.fixture
def sweep_until(tmp_path, image_folder, monkeypatch, compile_cache):
    """``sweep_until(event)``: ``sweep --cells=cifar10_resnet18`` (a ResNet-8 on a tiny folder)
    whose budget runs out when ``event()`` becomes true; its exit status."""
    for name, value in environment(compile_cache).items():
        monkeypatch.setenv(name, value)
    args = [
        "--cells=cifar10_resnet18",
        "--data",
        f"cifar10={image_folder}",
        f"--workdir_root={tmp_path / 'sweep'}",
        "--budget_seconds=1",  # replaced by the event
        f"--results={tmp_path / 'results'}",
        "--",
        "--config.model=resnet8",
        "--config.batch_size=8",
        "--config.num_epochs=1000",
    ]

    def run(event, cells="cifar10_resnet18", parallel=1):
        monkeypatch.setattr(sweep, "Budget", lambda seconds: BudgetUntil(event))
        return sweep.main([f"--cells={cells}", f"--parallel={parallel}", *args[1:]])

    return run


@pytest.mark.slow
def test_a_budget_stops_a_cell_with_a_checkpoint_it_resumes_from(tmp_path, sweep_until, capsys):
    workdir = tmp_path / "sweep" / "cifar10_resnet18"
    log = tmp_path / "sweep" / "cifar10_resnet18.log"
    assert sweep_until(lambda: bool(checkpoint_steps(workdir / "checkpoints"))) == 0
    assert "cifar10_resnet18: stopped by the budget after" in capsys.readouterr().out
    assert recorded_config(workdir)["num_epochs"] == 1000
    assert "Stopped at step" in log.read_text()

    resumed = lambda: log.exists() and "Resuming" in log.read_text()  # noqa: E731
    assert sweep_until(resumed) == 0
    assert f"Resuming {workdir} from step" in log.read_text()
    assert "the same command resumes it" in capsys.readouterr().out


@pytest.mark.slow
def test_parallel_cells_train_at_once_each_with_its_share_of_memory(tmp_path, sweep_until, capsys):
    first = tmp_path / "sweep" / "cifar10_resnet18"
    # The budget ends when the first cell has saved a checkpoint: by then the second one, started
    # beside it, is running too (one at a time, it would not have started).
    assert (
        sweep_until(
            lambda: bool(checkpoint_steps(first / "checkpoints")), "cifar10_resnet18,cifar10_vgg19", 2
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "cifar10_resnet18: stopped by the budget after" in printed
    assert "cifar10_vgg19: stopped by the budget after" in printed and "not started" not in printed
    assert (tmp_path / "sweep" / "cifar10_vgg19.log").exists()


@pytest.mark.slow
def test_sigterm_to_the_sweep_stops_its_cells_with_checkpoints_and_leaves_none_running(
    tmp_path, sweep_until, capsys
):
    """A scheduler's SIGTERM to the sweep alone: each cell saves a checkpoint and stops (none is
    left training, orphaned), what finished is kept, and the sweep exits 128 + 15."""
    workdir = tmp_path / "sweep" / "cifar10_resnet18"

    def terminate_once_saved():
        if checkpoint_steps(workdir / "checkpoints"):
            os.kill(os.getpid(), signal.SIGTERM)  # to this process, the sweep: not to its cell
        return False  # the budget never ends

    assert sweep_until(terminate_once_saved) == 128 + signal.SIGTERM
    printed = capsys.readouterr().out
    assert "cifar10_resnet18: stopped by the sweep's SIGTERM after" in printed
    assert "the same command resumes it" in printed
    assert "Stopped at step" in (tmp_path / "sweep" / "cifar10_resnet18.log").read_text()
    with WorkdirLock(workdir):  # free: no process trains there any more
        pass


# A sweep that starts one cell (a stand-in that records the SIGTERM it gets), says the cell's pid,
# and waits to be killed.
SWEEP_KILLED_WITH_ITS_CELL = """
import sys, time
from pathlib import Path
from flax_resnets.commands import sweep

folder = Path(sys.argv[1])
cell = (  # a trainer's entry point first, as main.py's
    "from flax_resnets import interrupts\\n"
    "interrupts.install('train')\\n"
    "import signal, sys, time\\n"
    "def stop(number, frame):\\n"
    f"    open({str(folder / 'cell_stopped')!r}, 'w').write(signal.Signals(number).name)\\n"
    "    sys.exit(0)\\n"
    "signal.signal(signal.SIGTERM, stop)\\n"
    "print('ready', flush=True)\\n"
    "time.sleep(600)\\n"
)
command = [sys.executable, "-c", cell]
started = sweep.start_cell("c", folder, folder / "c.log", command, sweep.cell_environment(1))
while "ready" not in (folder / "c.log").read_text():
    time.sleep(0.05)
print(started.process.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_sweep_killed_outright_stops_its_cells(tmp_path):
    """kill -9 to a sweep once left its cells training to their end, past its budget, holding their
    workdirs: each cell now gets SIGTERM (the trainer saves a checkpoint and stops)."""
    the_sweep = subprocess.Popen(
        [sys.executable, "-c", SWEEP_KILLED_WITH_ITS_CELL, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    cell = int(the_sweep.stdout.readline())
    the_sweep.kill()
    the_sweep.wait()
    stopped = tmp_path / "cell_stopped"
    deadline = time.monotonic() + HANG_GUARD_SECONDS  # a hang guard, not a speed budget
    while not (stopped.exists() and stopped.read_text() == "SIGTERM"):
        assert time.monotonic() < deadline, f"the cell (pid {cell}) outlived its sweep"
        time.sleep(0.05)


def test_each_of_k_parallel_cells_gets_a_kth_of_the_accelerators_memory(monkeypatch):
    monkeypatch.delenv("XLA_PYTHON_CLIENT_MEM_FRACTION", raising=False)
    assert sweep.cell_environment(4)["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.225"
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in sweep.cell_environment(1)
    monkeypatch.setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.5")  # the user's choice stands
    assert sweep.cell_environment(4)["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.5"


def test_a_budget_ending_before_the_first_checkpoint_says_nothing_can_resume(tmp_path, sweep_until, capsys):
    started = lambda: (tmp_path / "sweep" / "cifar10_resnet18.log").exists()  # noqa: E731
    assert sweep_until(started) == 0
    assert "before its first checkpoint: nothing to resume, it will start again" in capsys.readouterr().out
    assert not checkpoint_steps(tmp_path / "sweep" / "cifar10_resnet18" / "checkpoints")


def test_the_sweep_refuses_unknown_cells_and_missing_data(tmp_path):
    for args, message in (
        (["--cells=cifar10_resnet19"], "'cifar10_resnet19' names no Table 1 cell"),
        (["--cells=cifar10_resnet18", "--data", "cifar10=/nowhere"], "--data 'cifar10=/nowhere'"),
    ):
        with pytest.raises(InputError, match=re.escape(message)):
            sweep.main([*args, f"--workdir_root={tmp_path / 'sweep'}", "--budget_seconds=10"])
    assert not (tmp_path / "sweep").exists()


def test_the_sweep_refuses_data_of_another_dataset_and_damaged_files(tmp_path, image_folder):
    from flax_resnets.data.sources import read_image_folder, save_arrays

    source = read_image_folder(str(image_folder))  # 3 channels
    fashion = tmp_path / "fashion_mnist.npz"
    save_arrays(fashion, {**source, "dataset": "fashion_mnist"})
    colour_as_fashion = tmp_path / "colour.npz"
    save_arrays(colour_as_fashion, source)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(fashion.read_bytes()[:500])
    for data, message in (
        (f"cifar10={fashion}", "holds fashion_mnist with 3-channel images, not cifar10"),
        (f"fashion_mnist={colour_as_fashion}", "not fashion_mnist (1 channel(s))"),
        (f"cifar10={truncated}", "cannot be read as an array file"),
    ):
        args = ["--cells=cifar10_resnet18", "--data", data, f"--workdir_root={tmp_path / 'sweep'}"]
        with pytest.raises(InputError, match=re.escape(message)):
            sweep.main([*args, "--budget_seconds=10"])
    assert not (tmp_path / "sweep").exists()


def test_a_cell_of_several_seeds_shows_their_mean_and_spread_and_marks_a_paper_value_outside_it(
    tmp_path, capsys
):
    runs = [
        fake_run(tmp_path / "a", "fashion_mnist", "resnet18", 0.0, seed_accuracies=[0.931, 0.935, 0.939]),
        fake_run(tmp_path / "b", "fashion_mnist", "vgg19", 0.0, seed_accuracies=[0.870, 0.872, 0.874]),
    ]
    cells = row(table_lines(tmp_path, capsys, runs), "Fashion-MNIST")
    # 93.5 +- 0.4: the paper's 93.38 inside; 87.2 +- 0.2: the paper's 89.61 far outside (marked).
    assert cells[2] == "**93.5 ± 0.4** (3) / 93.38 (+0.1)"
    assert cells[1] == "**87.2 ± 0.2** (3) / 89.61 (-2.4)‡"


def test_a_cell_an_earlier_sweep_finished_is_kept_not_trained_again(tmp_path, monkeypatch, capsys):
    fake_run(tmp_path / "sweep" / "cifar10_resnet18", "cifar10", "resnet18", 0.87)
    monkeypatch.setattr(sweep, "start_cell", lambda *args: pytest.fail("a finished cell was started again"))
    args = ["--cells=cifar10_resnet18", f"--workdir_root={tmp_path / 'sweep'}", "--budget_seconds=10"]
    assert sweep.main([*args, f"--results={tmp_path / 'results'}"]) == 0
    assert "cifar10_resnet18: finished by an earlier sweep, kept in" in capsys.readouterr().out
    (kept,) = (tmp_path / "results" / "runs" / "cifar10_resnet18").iterdir()
    kept = json.loads((kept / "eval.json").read_text())
    assert kept["test_accuracy"] == 0.87
