"""The trainer's programs compiled for a multi-host TPU slice on the CPU (libtpu describes the
slice; no TPU is needed): a BatchNorm cell with one seed and three (a dropout cell's three seeds:
.ci/run), the scan over steps and the vmap over seeds that a TPU runs, and what ``compile`` makes
of them."""

import contextlib
import importlib.util
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import jax
import pytest
from run_helpers import HANG_GUARD_SECONDS, REPO

from flax_resnets.cli import EXIT_REFUSED, run_command
from flax_resnets.commands import compile as compile_command
from flax_resnets.commands.compile import compile_here as real_compile_here
from flax_resnets.config import cell_config
from flax_resnets.errors import InputError
from flax_resnets.models import create_model
from flax_resnets.models.flops import forward_gflops
from flax_resnets.runtime import parallel, tpu, tuning

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is None,
    reason='libtpu is not installed (pip install -e ".[tpu]"): TPU programs cannot be compiled',
)

SLICE = "v4:2x2x2"  # 8 chips, 16 devices (a v4 chip's two TensorCores), on 2 hosts
# Small programs of a Table 1 cell (the compile time is the model's, not the slice's): a BatchNorm
# network trained in calls of 2 steps, evaluated in batches of 16 (libtpu takes seconds longer per
# program at the cells' 256).
CELLS = {"batchnorm": ("cifar10_resnet18", "resnet8")}
TRAINING_IMAGES = {"batchnorm": 40_000}  # 80% of CIFAR-10's


def small_config(kind: str, num_seeds: int):
    cell, model = CELLS[kind]
    config = cell_config(cell)
    config.update(model=model, num_seeds=num_seeds, steps_per_call=2, eval_batch_size=16)
    return config


@pytest.fixture(scope="module")
def tpu_slice():
    return tpu.slice_of(SLICE)


# The BatchNorm cell with one seed and with three (the seeds' vmap); the dropout cell's programs,
# three seeds of them, compile in .ci/run (its table in the log), by the same code as these.
COMPILED = [("batchnorm", 1), ("batchnorm", 3)]


@pytest.fixture(scope="module")
def compiled(tpu_slice):
    """The programs of each pair in ``COMPILED``, compiled once for the module."""
    return {pair: compile_command.compile_run(small_config(*pair), tpu_slice.devices) for pair in COMPILED}


def test_libtpu_describes_a_multi_host_slice(tpu_slice):
    assert (len(tpu_slice.devices), tpu_slice.hosts, tpu_slice.devices_per_chip) == (16, 2, 2)
    assert tpu_slice.chip.generation == "v4"
    mesh = parallel.make_mesh(3, tpu_slice.devices)
    assert dict(mesh.shape) == {"seed": 1, "data": 16}  # several hosts: seeds share every device
    assert parallel.platform(mesh) == "tpu"


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "num_seeds"), COMPILED)
def test_the_training_and_evaluation_programs_compile_for_the_slice(compiled, kind, num_seeds):
    config = small_config(kind, num_seeds)
    training, evaluation = compiled[(kind, num_seeds)]
    assert (training.name, evaluation.name) == ("training call", "evaluation step")
    # A step's convolutions and products are a forward and a backward pass (about 3 forwards) of
    # every seed's batch, shared by the 16 devices; evaluation is one forward of its batch.
    model = create_model(config.model, input_channels=3)
    forward = forward_gflops(model) * 1e9
    per_device = config.batch_size * num_seeds * forward / 16
    assert 2.5 * per_device < training.flops <= 3 * per_device
    eval_batch = -(-config.eval_batch_size // 16) * 16
    assert evaluation.flops == pytest.approx(eval_batch * num_seeds * forward / 16, rel=0.02)
    # The whole dataset stays on every device: the training split in the training call's arguments.
    images = TRAINING_IMAGES[kind]
    assert training.dataset_bytes == images * 32 * 32 * 3 + images * 4  # uint8 pixels, int32 labels
    assert training.dataset_bytes < training.argument_bytes < training.device_bytes


@pytest.mark.slow
def test_three_seeds_hold_three_states_on_every_device(compiled):
    """The arguments but the dataset (each seed's state and batch order) triple, within a tenth: a
    TPU pads small arrays to whole tiles, and three seeds' BatchNorm vectors fill the tiles of one's."""
    one, three = compiled[("batchnorm", 1)][0], compiled[("batchnorm", 3)][0]
    state = one.argument_bytes - one.dataset_bytes
    assert three.argument_bytes - three.dataset_bytes == pytest.approx(3 * state, rel=0.1)


@pytest.mark.slow
def test_a_tpu_program_takes_no_cpu_setting(tpu_slice):
    """Built on a CPU host for a TPU, the steps are a loop and the seeds one vmapped program, as a
    TPU runs them (a CPU's program unrolls both): three seeds convolve as often as one."""
    texts = {}
    for num_seeds in (1, 3):
        mesh = parallel.make_mesh(num_seeds, tpu_slice.devices)
        traced, _ = compile_command.trace_run(small_config("batchnorm", num_seeds), mesh)["training call"]
        texts[num_seeds] = traced.lower().as_text()
    assert "stablehlo.while" in texts[3]
    assert texts[3].count("stablehlo.convolution") == texts[1].count("stablehlo.convolution") > 0
    assert tuning.for_backend("tpu") == tuning.PLAIN


V6E_COMMAND = [
    sys.executable,
    "-m",
    "flax_resnets",
    "compile",
    "--cells=cifar10_resnet18",
    "--topology=v6e:2x2",
]


@pytest.mark.slow
def test_under_a_hard_stack_limit_the_v6e_crash_is_a_row_saying_what_to_do():
    """A shell whose hard limit keeps the stack limited: the compiling child still crashes, and the
    crash is a row and a line that says to lift the limit."""
    command = " ".join(["ulimit -s 8192;", *V6E_COMMAND, "--config.model=resnet8"])
    result = subprocess.run(["bash", "-c", command], cwd=REPO, capture_output=True, text=True)
    rows = [line for line in result.stdout.splitlines() if line.startswith("| cifar10_resnet18")]
    assert result.returncode == 1 and len(rows) == 1 and "does not compile" in rows[0]
    assert "ulimit -s unlimited" in result.stderr.strip().splitlines()[-1]


def test_a_v6e_process_under_a_stack_limit_starts_again_without_or_is_refused(monkeypatch):
    limits = {"soft": (8 * 2**20, resource.RLIM_INFINITY), "hard": (8 * 2**20, 8 * 2**20)}
    started = []
    monkeypatch.setattr(tpu.os, "execv", lambda *args: started.append(args))
    monkeypatch.setattr(tpu.resource, "setrlimit", lambda *args: None)
    monkeypatch.setattr(tpu.resource, "getrlimit", lambda kind: limits["soft"])
    tpu.require_compiler_stack("TPU v5 lite")  # its compiler needs no more
    assert started == []
    tpu.require_compiler_stack("TPU v6 lite")
    assert started and started[0][1][0] == sys.executable
    monkeypatch.setattr(tpu.resource, "getrlimit", lambda kind: limits["hard"])
    with pytest.raises(InputError, match="ulimit -s unlimited"):
        tpu.require_compiler_stack("TPU v6 lite")


@pytest.mark.slow
def test_the_command_prints_each_programs_row_for_v6e_too(capsys):
    """For v6e, whose compiler (libtpu 0.0.42.1) crashes on a residual network's training call in a
    process started under a stack limit: the command starts its child without one."""
    status = compile_command.main(
        # overrides among the command's own flags, in the order a user may type them
        [
            "--config.model=resnet8",
            "--cells=cifar10_resnet18",
            "--topology=v6e:2x2",
            "--config.batch_size=8",
            "--config.eval_batch_size=8",
        ]
    )
    assert status == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| cifar10")]
    assert [row.split(" | ")[4] for row in rows] == ["training call", "evaluation step"]
    assert all("| resnet8, 8, 1, float32 | v6e:2x2 | 4 (1) |" in row for row in rows)


def test_a_batch_that_does_not_fit_is_refused_naming_the_largest_that_does(monkeypatch, tpu_slice):
    """The search, on a program whose memory is 1 GB plus 1 MB an example (refused by the compiler
    well past the device's 17.2 GB): the largest multiple of 16 devices under the limit."""
    hbm = tpu_slice.chip.hbm_bytes / tpu_slice.devices_per_chip

    def fake_compiled(config, tpu_slice, only_training=False):
        held = 1e9 + 1e6 * config.batch_size
        if held > 1.2 * hbm:
            return None  # out of memory, as XLA:TPU refuses while compiling
        program = compile_command.CompiledProgram("training call", 1, int(held), 0, 0, 0, 0, 1.0, 0.0)
        return [program] if only_training else [program, program]

    monkeypatch.setattr(compile_command, "compiled", fake_compiled)
    fitting = int((hbm - 1e9) / 1e6) // 16 * 16
    assert compile_command.largest_fitting_batch(cell_config("cifar10_resnet18"), tpu_slice) == fitting
    config = cell_config("cifar10_resnet18")
    config.batch_size = 32_768
    with pytest.raises(InputError, match=f"the largest that fits is about {fitting} "):
        compile_command.compile_config("cifar10_resnet18", config, tpu_slice)


def test_out_of_memory_is_told_from_other_compile_errors():
    assert compile_command.is_out_of_memory(
        jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Ran out of memory in hbm")
    )
    assert not compile_command.is_out_of_memory(jax.errors.JaxRuntimeError("INVALID_ARGUMENT: a bad shape"))
    assert not compile_command.is_out_of_memory(ValueError("RESOURCE_EXHAUSTED"))


@pytest.mark.parametrize(
    "topology, message",
    [
        ("v9:2x2", "unknown TPU slice 'v9:2x2': write GENERATION:TOPOLOGY"),
        ("v5e", "unknown TPU slice 'v5e'"),
        ("v5e:3x7", "libtpu cannot describe the TPU slice 'v5e:3x7'"),
    ],
)
def test_a_slice_that_does_not_exist_is_refused_in_one_line(topology, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_command(compile_command.main, ["--cells=cifar10_resnet18", f"--topology={topology}"])
    assert exit_info.value.code == EXIT_REFUSED
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_without_libtpu_the_command_says_what_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "libtpu" else real_find_spec(name, *a)
    )
    with pytest.raises(InputError, match=r'needs libtpu, which is not installed: pip install "flax-resnets'):
        tpu.slice_of("v5e:2x2")


@pytest.mark.slow
def test_a_child_that_crashed_without_a_stack_limit_is_started_once_more(monkeypatch, tpu_slice, tmp_path):
    import run_helpers

    monkeypatch.setenv("CRASHED_MARKER", str(tmp_path / "crashed"))
    monkeypatch.setattr(compile_command, "compile_here", run_helpers.crash_the_first_time)
    monkeypatch.setattr(tpu, "stack_limit_lifted", lambda: contextlib.nullcontext(True))
    assert compile_command.compiled(small_config("batchnorm", 1), tpu_slice) is None
    assert (tmp_path / "crashed").exists()  # the first child crashed; the second answered
    monkeypatch.setattr(tpu, "stack_limit_lifted", lambda: contextlib.nullcontext(False))
    (tmp_path / "crashed").unlink()
    with pytest.raises(  # under a limit no retry, and the error names the compiler's own report
        compile_command.CompilerCrashError, match="its report: .*flax_resnets_compile_.*ulimit -s unlimited"
    ):
        compile_command.compiled(small_config("batchnorm", 1), tpu_slice)


@pytest.mark.slow
def test_a_compiler_crash_is_a_row_and_one_line_not_the_end_of_the_command(monkeypatch, tpu_slice, capsys):
    """libtpu's compiler can end its process (a stack overflow); each program compiles in a child,
    so a crash (``compiled``'s error: the test above) is reported, the other configs go on, and the
    command exits 1."""
    def compiled(config, tpu_slice, only_training=False):
        if config.dataset == "cifar10":
            raise compile_command.CompilerCrashError("libtpu's compiler crashed (its report: r.log)")
        return real_compiled(config, tpu_slice, only_training=only_training)

    real_compiled = compile_command.compiled
    monkeypatch.setattr(compile_command, "compiled", compiled)
    monkeypatch.setattr(compile_command, "compile_here", real_compile_here)
    status = compile_command.main(
        [
            "--cells=cifar10_resnet18,fashion_mnist_vgg19",
            f"--topology={SLICE}",
            "--config.model=resnet8",
            "--config.eval_batch_size=16",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 1
    assert "| cifar10_resnet18 | resnet8, 16, 1, float32 | v4:2x2x2 | 16 (2) | does not compile" in out
    assert "| fashion_mnist_vgg19 | resnet8, 16, 1, float32 | v4:2x2x2 | 16 (2) | training call |" in out
    # Each config says when its compiling starts (a log is not silent for minutes), then the error.
    assert err.splitlines() == [
        f"cifar10_resnet18 on {SLICE}: compiling the training call and evaluation step",
        f"fashion_mnist_vgg19 on {SLICE}: compiling the training call and evaluation step",
        f"error: cifar10_resnet18 on {SLICE}: libtpu's compiler crashed (its report: r.log)",
    ]


KILLED_PARENT = """
import glob, os, sys, tempfile, types
sys.path.insert(0, {tests!r})
import run_helpers
from flax_resnets.commands import compile as compile_command
from flax_resnets.config import cell_config
from flax_resnets.errors import InputError
compile_command.compile_here = run_helpers.refuse_or_wait
try:
    compile_command.compiled(cell_config("cifar10_resnet18"), types.SimpleNamespace(name="refused"))
except InputError:
    print(len(glob.glob(os.path.join(tempfile.gettempdir(), "flax_resnets_compile_*"))), flush=True)
compile_command.compiled(cell_config("cifar10_resnet18"), types.SimpleNamespace(name="waits"))
"""


def until(condition):
    """``condition()``'s first true value, asked every 0.1 s (a bound only against a hang)."""
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def proc_file(pid, name):
    """``/proc/PID/NAME``'s bytes, or b"" where the process has gone."""
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return b""


def compiling_child(pid):
    threads = [task.name for task in Path(f"/proc/{pid}/task").glob("*")]
    children = [int(c) for thread in threads for c in proc_file(pid, f"task/{thread}/children").split()]
    return next((child for child in children if b"spawn_main" in proc_file(child, "cmdline")), None)


def has_ended(pid):
    stat = proc_file(pid, "stat")
    return not stat or stat.rsplit(b")", 1)[1].split()[0] == b"Z"  # gone, or a zombie


@pytest.mark.slow
def test_compiles_children_leave_no_report_when_refused_and_end_with_a_killed_parent(tmp_path):
    """A child that refuses its config leaves no empty report behind; a child still compiling when
    its parent is killed outright (kill -9: no handler of the parent runs) ends with it, and the
    pool's resource tracker cleans up after them without a word on the command's stderr."""
    parent = subprocess.Popen(
        [sys.executable, "-c", KILLED_PARENT.format(tests=str(REPO / "tests"))],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout.readline() == "0\n"
        child = until(lambda: compiling_child(parent.pid))
    finally:
        parent.kill()
        parent.wait()
    assert until(lambda: has_ended(child))
    assert "resource_tracker" not in parent.stderr.read()  # read to its end: the tracker's too
