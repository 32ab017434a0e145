"""Every command under the same faults, from two tables.

``OUTPUTS``: each output a command writes, given an empty path, a path of the wrong kind, a path
under a file, one typed with ``~``, one too long for the file system or a link to nothing, is
refused in one line (exit status 2) before any work, writing nothing.

``RUNS``: each command (``main.py`` as ``train``) run as a user runs it, on a tiny trained run and
image folder: Ctrl-C and SIGTERM at several moments (while JAX loads, once it has printed,
while it writes a file) end it with exit status 130 or 143, its last line saying so, no traceback;
a file-size limit (a full disk) is one line naming the file and the reason (exit status 1). In
every case the files it had written before are unchanged or whole, and no temporary is left.
Each command that needs a device, told by ``JAX_PLATFORMS`` to use one the machine lacks, says so
in one line.

Every command meets a signal once its own work has begun (``working``, Ctrl-C and SIGTERM
alternating); a moment whose code every command shares stands for all of them in two: the signal
while JAX loads (``interrupts.install`` at both entry points: main.py and ``python -m flax_resnets``)
and while a file is half written (``files.atomic_write``, every command's writer). The file-size
limit meets each kind of writer once: text (table1), an array file (data), a picture (reports),
the checkpoints (train).

A command joins by being listed in both (``WRITES_NOTHING`` for ``OUTPUTS``): the first test fails
for a command missing from either, so a new command gets these guarantees without anyone
remembering.
"""

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image_folder
from PIL import Image
from run_helpers import (
    HANG_GUARD_SECONDS,
    REPO,
    TINY,
    environment,
    trained_here,
    tree_fingerprint,
    under_faults,
)

from flax_resnets.__main__ import COMMANDS
from flax_resnets.files import WorkdirLock
from flax_resnets.interrupts import last_line

# Per command: (flag, "file" or "folder", the other arguments an invocation needs).
OUTPUTS = {
    "table1": [("--out", "file", []), ("--results", "folder", [])],
    "sweep": [
        ("--workdir_root", "folder", ["--cells=cifar10_resnet18", "--budget_seconds=1"]),
        ("--results", "folder", ["--cells=cifar10_resnet18", "--budget_seconds=1"]),
        ("--tar", "file", ["--cells=cifar10_resnet18", "--budget_seconds=1"]),
    ],
    "benchmark": [("--json", "file", [])],
    "parity": [("--workdir_root", "folder", ["--train"])],
    "data": [("--out", "file", ["export", "--dataset=image_folder"])],
    "figures": [("--out", "folder", ["degradation"])],
    "export": [("--out", "file", ["--workdir=runs/none"])],
    "compile": [("--out", "file", ["--cells=cifar10_resnet18", "--topology=v5e:2x2"])],
}
# Commands whose only output is what they print (reports --plots redraws inside the runs given,
# and train is main.py's program: its workdir's faults are tests/test_workdir.py's).
WRITES_NOTHING = {"train", "reports", "models", "predict", "config"}

CASES = [(command, flag, kind, args) for command, outputs in OUTPUTS.items() for flag, kind, args in outputs]
FAULTS = ["empty", "wrong kind", "under a file", "tilde", "too long", "a dangling link"]


def test_fault_tables_list_every_command():
    assert set(COMMANDS) == set(OUTPUTS) | WRITES_NOTHING == set(RUNS)
    assert not set(OUTPUTS) & WRITES_NOTHING


def faulty_path(fault, kind, tmp_path):
    """The path a user types for ``fault`` on an output of ``kind``, and what the refusal names."""
    a_file, a_folder = tmp_path / "a_file", tmp_path / "a_folder"
    wrong = a_folder if kind == "file" else a_file
    if fault == "empty":
        return "", "expected a path, got an empty value"
    if fault == "wrong kind":
        return str(wrong), f"{wrong} is a {'folder' if kind == 'file' else 'file'}"
    if fault == "under a file":
        return f"{a_file}/out", f"{a_file} is a file, not a folder to write into"
    if fault == "too long":  # more than a name may hold (255 bytes); the error would come at the first write
        return f"{tmp_path}/{'x' * 250}", "is too long for this file system (255 bytes a name"
    if fault == "a dangling link":
        return str(tmp_path / "a_link"), f"{tmp_path / 'a_link'} is a link to {tmp_path / 'nowhere'}, which"
    home_wrong = tmp_path / "home" / wrong.name  # ~ is HOME: the wrong kind there too
    return f"~/{wrong.name}", f"{home_wrong} is a {'folder' if kind == 'file' else 'file'}"


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(("command", "flag", "kind", "args"), CASES, ids=[f"{c} {f}" for c, f, _, _ in CASES])
def test_fault_of_an_output_path_is_one_line_before_any_work(
    command, flag, kind, args, fault, tmp_path, monkeypatch, capsys
):
    (tmp_path / "a_file").write_text("kept")
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "a_file").write_text("kept")
    (tmp_path / "home" / "a_folder").mkdir()
    (tmp_path / "a_link").symlink_to(tmp_path / "nowhere")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(REPO)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    path, message = faulty_path(fault, kind, tmp_path)
    main = importlib.import_module(f"flax_resnets.commands.{command}").main
    with pytest.raises(SystemExit) as exit_status:
        main([*args, f"{flag}={path}"])
    assert exit_status.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "a_file").read_text() == "kept"


# Per command: a run of it as a user types it, cheap here ({images}: an image folder, {run}: a
# trained run's copy, {out}: an empty folder), and the files it writes (under {out} or {run}), which
# exist beforehand with older content where they can.
RUNS = {
    "train": (
        [
            "main.py",
            *TINY,
            "--config.num_epochs=1",
            "--config.dataset=image_folder",
            "--config.data_dir={images}",
            "--workdir={out}/run",
        ],
        [],
    ),
    "table1": (["table1", "--results={out}/results", "--out={out}/table1.md"], ["{out}/table1.md"]),
    "sweep": (
        [
            "sweep",
            "--cells=cifar10_resnet18",
            "--budget_seconds=1",
            "--num_seeds=1",
            "--data",
            "cifar10={images}",
            "--workdir_root={out}/sweep",
            "--results={out}/results",
        ],
        ["{out}/results/table1.md"],
    ),
    "benchmark": (
        [
            "benchmark",
            "--models=resnet8",
            "--batch_sizes=2",
            "--steps=1",
            "--rounds=1",
            "--warmup=0",
            "--json={out}/benchmark.json",
        ],
        ["{out}/benchmark.json"],
    ),
    "parity": (["parity", "--models=resnet8", "--batch_size=4", "--steps=2"], None),  # passes or exits 1
    "reports": (["reports", "--plots", "{run}"], ["{run}/curves.png", "{run}/confusion.png"]),
    "data": (
        ["data", "export", "--dataset=image_folder", "--data_dir={images}", "--out={out}/data.npz"],
        ["{out}/data.npz"],
    ),
    "models": (["models", "--models=resnet8"], None),
    "figures": (
        ["figures", "landscape", "--workdir={run}", "--grid=2", "--images=8", "--out={out}/figures"],
        ["{out}/figures/landscape.npz", "{out}/figures/landscape.png"],
    ),
    "predict": (["predict", "--workdir={run}", "{images}/test"], None),
    "export": (["export", "--workdir={run}", "--format=npz", "--out={out}/model.npz"], ["{out}/model.npz"]),
    "config": (["config", "configs/default.py"], None),
    "compile": (
        [
            "compile",
            "--cells=cifar10_resnet18",
            "--config.model=resnet8",
            "--topology=v5e:2x2",
            "--out={out}/compile.md",
        ],
        ["{out}/compile.md"],
    ),
}
# Every command at work, the signals alternating; the shared moments on two commands each.
SIGNAL_CASES = [(command, "working", ("INT", "TERM")[k % 2]) for k, command in enumerate(RUNS)]
SIGNAL_CASES += [("train", "loading", "INT"), ("config", "loading", "TERM")]
SIGNAL_CASES += [("export", "writing", "INT"), ("table1", "writing", "TERM")]
WRITER_KINDS = ["table1", "data", "reports", "train"]


@pytest.fixture(scope="module")
def a_run(tmp_path_factory, compile_cache):
    """A ResNet-8 trained for one epoch on a small image folder: what predict, export, reports and
    figures use."""
    root = tmp_path_factory.mktemp("a_run")
    images = write_image_folder(root / "images")
    run_args = ["--config.dataset=image_folder", f"--config.data_dir={images}", "--config.num_epochs=1"]
    trained_here([*TINY, *run_args, f"--workdir={root / 'run'}"])
    return images, root / "run"


def prepared(command, a_run, tmp_path):
    """The command's arguments and files to check for ``command`` in ``RUNS``, its outputs placed
    beforehand (a trained run's files copied, others written with an older content)."""
    images, trained = a_run
    run = shutil.copytree(trained, tmp_path / "run")
    (tmp_path / "out").mkdir()
    paths = {"images": images, "run": run, "out": tmp_path / "out"}
    args, outputs = RUNS[command]
    args = [arg.format(**paths) for arg in args]
    if command == "compile":
        pytest.importorskip("libtpu", reason="compile needs libtpu: pip install flax-resnets[tpu]")
    for output in [output.format(**paths) for output in outputs or []]:
        output = tmp_path / output
        if not output.exists():
            output.parent.mkdir(parents=True, exist_ok=True)
            whole_file(output, trained / "curves.png")
    command_line = under_faults(*(args if command == "train" else ["-m", "flax_resnets", *args]))
    return command_line, tmp_path


def whole_file(path, a_png):
    """An older, whole file of ``path``'s kind (a picture: a copy of ``a_png``)."""
    if path.suffix == ".png":
        shutil.copy(a_png, path)
    elif path.suffix == ".npz":
        np.savez(path, older=np.arange(3))
    elif path.suffix == ".json":
        path.write_text(json.dumps({"older": True}))
    else:
        path.write_text("the older file\n")


def is_whole(path):
    """Whether ``path`` reads back whole, by its kind."""
    try:
        if path.suffix == ".npz":
            with np.load(path) as arrays:
                [arrays[name] for name in arrays.files]
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            [json.loads(line) for line in path.read_text().splitlines()]
        elif path.suffix == ".png":
            with Image.open(path) as image:
                image.load()
        elif path.suffix in (".md", ".txt"):
            return path.read_text().endswith("\n")
        return True
    except Exception:  # whatever reading it back raises: not whole
        return False


def contents(root):
    return {name: digest for name, (_, _, digest) in tree_fingerprint(root).items()}


def run_under(command_line, root, compile_cache, **faults):
    before, hidden = contents(root), set(root.rglob(".*"))
    result = subprocess.run(
        command_line,
        cwd=REPO,
        env={**environment(compile_cache), **faults},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
    )
    after = contents(root)
    changed = [name for name in before if after.get(name) != before[name]]
    assert all(is_whole(root / name) for name in changed if name in after), changed
    assert set(before) <= set(after), "a file was removed"
    left = {p for p in root.rglob(".*") if p.name != WorkdirLock.NAME}  # a run's lock is there to stay
    assert left <= hidden, f"temporaries left: {left - hidden}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result, changed


# Each command's happy path, once, in this process (the fast lane's; train's is tests/test_progress.py's,
# compile's tests/test_compile.py's, sweep's tests/test_sweep_plan.py's): exit 0, its files whole.
HAPPY_PATHS = [command for command in RUNS if command not in ("train", "compile", "sweep")]


@pytest.mark.parametrize("command", HAPPY_PATHS)
def test_every_command_runs_as_a_user_types_it(command, a_run, tmp_path, monkeypatch, capsys):
    from flax_resnets.__main__ import main

    images, trained = a_run
    paths = {"images": images, "run": shutil.copytree(trained, tmp_path / "run"), "out": tmp_path / "out"}
    paths["out"].mkdir()
    args, outputs = RUNS[command]
    monkeypatch.chdir(REPO)
    assert main([arg.format(**paths) for arg in args]) == 0
    assert capsys.readouterr().out
    assert all(is_whole(Path(output.format(**paths))) for output in outputs or [])


@pytest.mark.slow
@pytest.mark.parametrize(("command", "moment", "name"), SIGNAL_CASES, ids=[" ".join(c) for c in SIGNAL_CASES])
def test_fault_a_signal_at_any_moment_ends_the_command_saying_so(
    command, moment, name, a_run, tmp_path, compile_cache
):
    command_line, root = prepared(command, a_run, tmp_path)
    result, _ = run_under(command_line, root, compile_cache, SIGNAL_AT=f"{moment}:1:{name}")
    assert result.returncode == {"INT": 130, "TERM": 143}[name], result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    if moment == "loading":  # nothing done yet: only the line that says why it ended
        assert len(lines) == 1 and result.stdout == "", result.stderr[-3000:]
    last = lines[-1]
    stopped_training = last.startswith("Stopped ")  # a training loop (or a sweep of them) saves, then stops
    # A training or a sweep says to run it again to resume; any other command, only what it left.
    expected = last_line(getattr(signal, f"SIG{name}"), "train" if command == "main.py" else command)
    assert last == expected or stopped_training, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("command", WRITER_KINDS)
def test_fault_a_file_size_limit_is_one_line_and_older_files_stay(command, a_run, tmp_path, compile_cache):
    command_line, root = prepared(command, a_run, tmp_path)
    result, changed = run_under(command_line, root, compile_cache, FILE_SIZE_LIMIT="100")
    assert result.returncode == 1, result.stderr[-3000:]
    *before_it, last = result.stderr.strip().splitlines()  # progress, a cache's warning
    assert last.startswith(f"error: {root}") and last.endswith(": File too large."), result.stderr[-3000:]
    assert not [line for line in before_it if line.startswith("error")], before_it
    assert changed == []


# Run one after another in one process (no backend ever starts in it, so each command meets the
# failure afresh): each command's args from argv, its exit status and stderr as a JSON line.
EVERY_COMMAND = """
import contextlib, io, json, os, sys
import jax
from flax_resnets.__main__ import main
for platform, args in json.loads(sys.argv[1]):
    os.environ["JAX_PLATFORMS"] = platform
    jax.config.update("jax_platforms", platform)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(args)
        except SystemExit as exit:
            status = exit.code
    print(json.dumps([status, err.getvalue().strip().splitlines()]), flush=True)
"""
NEEDS_NO_DEVICE = {"table1", "reports", "data", "config"}


@pytest.mark.slow
def test_fault_a_backend_the_machine_lacks_is_one_line_for_every_command_that_needs_one(a_run, tmp_path):
    """JAX_PLATFORMS naming a platform unknown to JAX, a GPU where none is visible (JAX asserts), a
    TPU where none is attached: every command that needs a device says so in one line (exit 2), the
    others work. Not here: compile needs none (libtpu describes its slices); the sweep's cells are
    main.py's (train, here), and whether its budget of 1 s ends one first depends on speed."""
    images, trained = a_run
    paths = {"images": images, "run": shutil.copytree(trained, tmp_path / "run"), "out": tmp_path / "out"}
    paths["out"].mkdir()
    commands = [command for command in RUNS if command not in ("compile", "sweep")]
    platforms = [("bogus", "cuda", "tpu")[k % 3] for k in range(len(commands))]
    runs = [
        (platform, ["train", *RUNS[command][0][1:]] if command == "train" else RUNS[command][0])
        for platform, command in zip(platforms, commands, strict=True)
    ]
    runs = [(platform, [arg.format(**paths) for arg in args]) for platform, args in runs]
    result = subprocess.run(
        [sys.executable, "-c", EVERY_COMMAND, json.dumps(runs)],
        cwd=REPO,
        env={**os.environ, "JAX_PLATFORMS": "bogus"},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
    )
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == len(commands), result.stderr[-3000:]
    for command, platform, (status, lines) in zip(commands, platforms, answers, strict=True):
        if command in NEEDS_NO_DEVICE:
            assert status == 0, (command, lines)
        else:
            assert status == 2 and len(lines) == 1, (command, lines)
            assert lines[0].startswith(f"error: JAX_PLATFORMS={platform} names a backend this"), lines
