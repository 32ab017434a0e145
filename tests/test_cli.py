"""Every command answers --help with what it does and bad arguments with one line; a broken
jax/flax pair is one sentence."""

import importlib
import os
import subprocess
import sys

import pytest
from run_helpers import REPO

from flax_resnets.__main__ import COMMANDS
from flax_resnets.__main__ import main as flax_resnets_main


def run_command(*args):
    command = [sys.executable, "-m", "flax_resnets", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True)


def run_in_process(args, capsys, monkeypatch):
    """``python -m flax_resnets ARGS`` in this process (argument checks load nothing heavy twice):
    its exit status, stdout and stderr."""
    monkeypatch.chdir(REPO)
    try:
        status = flax_resnets_main(args)
    except SystemExit as exit_status:
        status = exit_status.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, status, out, err)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_answers_help(command, capsys, monkeypatch):
    result = run_in_process([command, "--help"], capsys, monkeypatch)
    assert result.returncode == 0, result.stderr[-2000:]
    usage, _, description = result.stdout.partition("\n\n")
    assert usage.startswith(f"usage: python -m flax_resnets {command}")
    assert len(description.splitlines()[0]) > 20  # a sentence, not just the flags
    module = importlib.import_module(f"flax_resnets.commands.{command.split()[0]}")
    assert module.__doc__.replace("``", "").strip() in result.stdout  # whole, as plain text
    assert "``" not in result.stdout
    # One style of flag names, as main.py's: --flag_name.
    flags = [word for word in result.stdout.split() if word.startswith("--")]
    assert flags and not [flag for flag in flags if "-" in flag[2:].split("=")[0]]


def test_no_command_lists_the_commands_as_an_error_and_help_as_an_answer():
    missing, asked = run_command(), run_command("--help")
    assert missing.returncode == 2 and asked.returncode == 0
    for command in COMMANDS:
        assert f"    {command} " in missing.stderr and f"    {command} " in asked.stdout


def test_a_flax_that_does_not_import_with_this_jax_is_one_sentence():
    code = (
        "import runpy, sys\n"
        "sys.modules['flax.nnx'] = None  # what flax 0.12.8 under jax 0.11.2 does: no import\n"
        "sys.argv = ['main.py', '--config=configs/quickstart.py', '--workdir=/tmp/never']\n"
        "runpy.run_path('main.py', run_name='__main__')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: flax ") and "does not work with jax" in lines[0]
    assert "pip install --upgrade flax" in lines[0]


BAD_ARGUMENTS = [
    (["nope"], "unknown command 'nope'"),
    (["train", "--config=configs/nope.py", "--workdir=/tmp/never"], "there is no such file"),
    (["table1", "--no_such_flag"], "unrecognized arguments: --no_such_flag"),
    (["table1", "--keep", "/nonexistent/run"], "only finished runs"),
    (["table1", "/nonexistent/run"], "/nonexistent/run: no such folder"),
    (
        ["sweep", "--cells=cifar10_resnet18", "--workdir_root=/tmp/never", "--budget_seconds=nan"],
        "--budget_seconds must be a positive number of seconds, got nan",
    ),
    (["predict", "--workdir=/nonexistent/run", "README.md"], "holds no run"),
    (["export", "--workdir=/nonexistent/run", "--out=m.pt"], "holds no run"),
    (["sweep", "--cells=cifar10_resnet19", "--workdir_root=/tmp/never", "--budget_seconds=1"], "resnet19"),
    (["benchmark", "--models=resnet19"], "Unknown model(s) resnet19"),
    (["benchmark", "--batch_sizes=abc"], "expected comma-separated positive integers, got 'abc'"),
    (["benchmark", "--steps=0"], "expected a positive integer, got '0'"),
    (["parity", "--num_classes=0"], "got '0'"),
    (["parity", "--models=resnet19"], "Unknown model(s) resnet19"),
    (["reports", "/nonexistent/run"], "/nonexistent/run holds no run"),
    (["data", "export", "--dataset=image_folder", "--out=x.txt"], "--out must be a file name ending in .npz"),
    (["models", "--models=resnet19"], "Unknown model(s) resnet19"),
    (["benchmark", "--num_seeds=0"], "expected comma-separated positive integers, got '0'"),
    (
        [
            "sweep",
            "--cells=cifar10_resnet18",
            "--workdir_root=/tmp/never",
            "--budget_seconds=1",
            "--parallel=0",
        ],
        "expected a positive integer, got '0'",
    ),
    (
        ["figures", "degradation", "--models=resnet20,resnet56", "--out=/tmp/never"],
        "needs plain and residual",
    ),
    (["figures", "landscape", "--workdir=/nonexistent/run", "--out=/tmp/never"], "holds no run"),
    (["compile", "--cells=cifar10_resnet19", "--topology=v5e:2x2"], "names no Table 1 cell"),
    (["compile", "--topology=v5e:2x2"], "pass either --config=FILE or --cells=CELL"),
    (["config", "--config.model", "resnet8"], "write an override as --config.model=VALUE, in one word"),
]


@pytest.mark.parametrize(("args", "message"), BAD_ARGUMENTS, ids=[" ".join(a[:2]) for a, _ in BAD_ARGUMENTS])
def test_every_command_refuses_bad_arguments_in_one_line(args, message, capsys, monkeypatch):
    result = run_in_process(args, capsys, monkeypatch)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert result.stdout == ""


# Refused by the argument types themselves (in-process: no JAX work happens before them).
BAD_PATHS = [
    # An unset variable's empty value, refused as such by every path flag.
    (["export", "--workdir=", "--out=m.pt"], "--workdir: expected a path, got an empty value"),
    (["data", "export", "--dataset=image_folder", "--out="], "--out: expected a path, got an empty value"),
    (["reports", ""], "expected a path, got an empty value"),
    # An output that cannot be written where asked, refused before any work (not after a benchmark).
    (["benchmark", "--json=/tmp"], "argument --json: /tmp is a folder, not a file to write"),
    (["table1", "--out=/tmp"], "argument --out: /tmp is a folder"),
    (["compile", "--cells=cifar10_resnet18", "--topology=v5e:2x2", "--out=/tmp"], "argument --out: /tmp is"),
    (["parity", "--seed=-5"], "argument --seed: expected a seed from 0 to 2147483647, got '-5'"),
    (
        ["figures", "landscape", "--workdir=x", "--grid=1", "--out=y"],
        "expected 2 or more points per axis, got '1'",
    ),
    (["export", "--workdir=/nonexistent/run", "--out=README.md/m.npz"], "README.md is a file, not a folder"),
    (["train", "--workdir="], "argument --workdir: expected a path, got an empty value"),
]


@pytest.mark.parametrize(("args", "message"), BAD_PATHS, ids=[" ".join(a[:2]) for a, _ in BAD_PATHS])
def test_every_path_and_seed_flag_refuses_what_cannot_be_used_in_one_line(args, message, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    command = importlib.import_module(f"flax_resnets.commands.{args[0]}")
    with pytest.raises(SystemExit) as exit_status:
        command.main(args[1:])
    assert exit_status.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_main_answers_help_with_every_flag_a_user_types():
    result = subprocess.run([sys.executable, "main.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage: main.py ")
    for flag in ("--config ", "--workdir ", "--mode ", "--checkpoint "):
        assert f"\n  {flag}" in result.stdout, flag
    assert "--config.FIELD=VALUE" in result.stdout


def test_a_path_typed_with_a_tilde_is_the_home_folders_and_is_printed_whole(tmp_path, monkeypatch, capsys):
    """A shell leaves ``~`` alone after ``=``: ``--out=~/x.npz`` must not write ``./~/x.npz``."""
    from conftest import write_image_folder

    from flax_resnets.commands import data

    images = write_image_folder(tmp_path / "images", classes=2, train_per_class=2)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert data.main(["export", "--dataset=image_folder", f"--data_dir={images}", "--out=~/x.npz"]) == 0
    assert (tmp_path / "home" / "x.npz").is_file() and not (tmp_path / "~").exists()
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'home' / 'x.npz'}: image_folder")


def test_main_refuses_an_empty_workdir_instead_of_training_in_the_current_folder(tmp_path):
    config = REPO / "configs" / "quickstart.py"
    result = subprocess.run(
        [sys.executable, str(REPO / "main.py"), f"--config={config}", "--workdir="],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: argument --workdir: expected a path, got an empty value (an unset variable?); see "
        f"{REPO / 'main.py'} --help."
    ]
    assert list(tmp_path.iterdir()) == []


def test_overrides_may_come_before_the_commands_own_arguments(capsys):
    from flax_resnets.commands import config

    args = ["--config.model=resnet8", "configs/fashion_mnist_vgg19.py", "--config.batch_size=2"]
    status = config.main(args)
    assert status == 0
    shown = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert shown["model"][:2] == ["*", "resnet8"] and shown["batch_size"][:2] == ["*", "2"]
    assert shown["dataset"][0] == "fashion_mnist"  # the file's, not the default's


def test_a_reader_that_closes_early_ends_the_command_quietly():
    """``python -m flax_resnets config | head -1``: the pipe's reader is gone before the command
    writes (closed here before it starts): no traceback, no error line, the shell's 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as closed_pipe:
        result = subprocess.run(
            [sys.executable, "-m", "flax_resnets", "config"],
            cwd=REPO,
            stdout=closed_pipe,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert result.returncode == 141 and result.stderr == "", result.stderr


@pytest.mark.parametrize("value", ["None", "{'model': 'resnet8'}"])
def test_a_config_file_whose_get_config_gives_no_configdict_is_refused(value, tmp_path, capsys, monkeypatch):
    config_file = tmp_path / "handmade.py"
    config_file.write_text(f"def get_config():\n    return {value}\n")
    result = run_in_process(["config", str(config_file)], capsys, monkeypatch)
    kind = "NoneType" if value == "None" else "dict"
    assert result.returncode == 2 and result.stderr.splitlines() == [
        f"error: --config={config_file}: get_config() gave a {kind}, not a ConfigDict; e.g. "
        "--config=configs/quickstart.py (the files in configs/)."
    ]


def test_a_config_file_in_a_folder_whose_name_holds_a_colon_is_read_whole(tmp_path, capsys, monkeypatch):
    """``FILE:ARG`` is split at its last colon only where FILE:ARG is no file (once: "no such file")."""
    config_file = tmp_path / "a:b" / "handmade.py"
    config_file.parent.mkdir()
    config_file.write_text(
        "from flax_resnets.config import default_config\n\n"
        "def get_config(model='resnet8'):\n    return default_config(model=model)\n"
    )
    for spec, model in ((config_file, "resnet8"), (f"{config_file}:vgg8", "vgg8")):
        result = run_in_process(["config", str(spec)], capsys, monkeypatch)
        assert result.returncode == 0 and f" {model} " in result.stdout.splitlines()[0], result
