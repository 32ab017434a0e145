"""Every command answers --help with what it does, and a broken jax/flax pair in one sentence."""

import subprocess
import sys

import pytest
from run_helpers import REPO

MODULES = ["benchmark", "data", "input_pipeline", "models", "parity", "reports", "sweep", "table1"]


@pytest.mark.parametrize("module", MODULES)
def test_every_module_command_answers_help(module):
    result = subprocess.run(
        [sys.executable, "-m", f"flax_resnets.{module}", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    usage, _, description = result.stdout.partition("\n\n")
    assert usage.startswith(f"usage: python -m flax_resnets.{module}")
    assert len(description.splitlines()[0]) > 20  # a sentence, not just the flags
    # One style of flag names, as main.py's: --flag_name.
    flags = [word for word in result.stdout.split() if word.startswith("--")]
    assert flags and not [flag for flag in flags if "-" in flag[2:].split("=")[0]]


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
