"""Every command under the same faults, from one table: each output a command writes, given an
empty path, a path of the wrong kind, a path under a file or one typed with ``~``, is refused in
one line (exit status 2) before any work, writing nothing; a file-size limit (a full disk)
while writing is one line naming the file and the reason (exit status 1), the old file intact.

Ctrl-C and SIGTERM while a command writes its output end it once the file is whole: one line,
exit status 130 or 143, no temporary file left.

A command joins by being listed in ``OUTPUTS`` (or in ``WRITES_NOTHING``): the first test fails
for a command in neither, so a new command gets these guarantees without anyone remembering.
"""

import importlib
import subprocess
import sys

import pytest
from run_helpers import REPO, environment, file_size_limited

from flax_resnets.__main__ import COMMANDS

# Per command: (flag, "file" or "folder", the other arguments an invocation needs).
OUTPUTS = {
    "table1": [("--out", "file", [])],
    "sweep": [
        ("--workdir_root", "folder", ["--cells=cifar10_resnet18", "--budget_seconds=1"]),
        ("--results", "folder", ["--cells=cifar10_resnet18", "--budget_seconds=1"]),
        ("--tar", "file", ["--cells=cifar10_resnet18", "--budget_seconds=1"]),
    ],
    "benchmark": [("--json", "file", []), ("--profile_dir", "folder", [])],
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
FAULTS = ["empty", "wrong kind", "under a file", "tilde"]


def test_fault_table_lists_every_command():
    assert set(COMMANDS) == set(OUTPUTS) | WRITES_NOTHING
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


@pytest.mark.parametrize(
    "args",
    [
        ["table1", "--results=RESULTS", "--out=OUT"],
        ["data", "export", "--dataset=image_folder", "--data_dir=IMAGES", "--out=OUT"],
    ],
    ids=["table1", "data export"],
)
def test_fault_a_file_size_limit_is_one_line_and_the_old_file_stays(
    args, tmp_path, image_folder, compile_cache
):
    out = tmp_path / ("out.npz" if "data" in args else "table1.md")
    out.write_text("the old file")
    replaced = {"RESULTS": str(tmp_path / "results"), "IMAGES": str(image_folder), "OUT": str(out)}
    for name, value in replaced.items():
        args = [arg.replace(name, value) for arg in args]
    env = environment(compile_cache)
    if "data" in args:  # decoded once without the limit: the limit meets the export, not the cache
        first = [arg.replace(str(out), str(tmp_path / "first.npz")) for arg in args]
        subprocess.run(
            [sys.executable, "-m", "flax_resnets", *first], cwd=REPO, env=env, capture_output=True, check=True
        )
    command = file_size_limited(1000, "-m", "flax_resnets", *args)
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"error: {out}: File too large.", lines
    assert out.read_text() == "the old file"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


# A command run with a signal sent to itself in the middle of writing its output (the file's
# content written, not yet flushed, renamed or whole).
SIGNALLED_WHILE_WRITING = """
import os, runpy, signal, sys
from flax_resnets import files
original = files._atomic_write

def _atomic_write(path, write, *, binary):
    def write_then_signal(file):
        write(file)
        os.kill(os.getpid(), getattr(signal, "SIG" + os.environ["SIGNAL"]))
    return original(path, write_then_signal, binary=binary)

files._atomic_write = _atomic_write
sys.argv = ["flax_resnets", *sys.argv[1:]]
runpy.run_module("flax_resnets", run_name="__main__")
"""


@pytest.mark.parametrize(("name", "status"), [("INT", 130), ("TERM", 143)])
def test_fault_a_signal_while_writing_ends_the_command_once_the_file_is_whole(
    name, status, tmp_path, compile_cache
):
    out = tmp_path / "table1.md"
    out.write_text("the old file")
    command = [
        sys.executable,
        "-c",
        SIGNALLED_WHILE_WRITING,
        "table1",
        f"--results={tmp_path}",
        f"--out={out}",
    ]
    env = {**environment(compile_cache), "SIGNAL": name}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == status, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "files already written are whole" in lines[0], lines
    assert out.read_text().startswith("# Table 1")  # the new file, whole
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
