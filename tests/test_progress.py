"""Progress on a terminal: decoding an image folder, training, validating and testing each draw a
bar; into a log only training does, the others say when they start and how long they took."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading

import pytest
from run_helpers import HANG_GUARD_SECONDS, REPO, TINY, environment, trained_here

from flax_resnets import progress as progress_module
from flax_resnets.progress import progress


def test_bars_are_drawn_on_a_terminal_and_only_trainings_into_a_log(capsys, monkeypatch):
    for terminal, in_logs, drawn in ((True, False, True), (False, False, False), (False, True, True)):
        monkeypatch.setattr(sys.stderr, "isatty", lambda terminal=terminal: terminal)
        with progress(3, "validation", "batch", in_logs=in_logs) as bar:
            bar.update(3)
        assert ("validation:   0%" in capsys.readouterr().err) == drawn  # too quick to say in a log


@pytest.mark.slow
def test_a_run_sent_to_a_file_says_when_each_long_part_starts_and_ends(tmp_path, image_folder, monkeypatch):
    monkeypatch.setattr(progress_module, "LOGGED_AFTER_SECONDS", 0.0)  # every part counts as long
    args = [*TINY, "--config.num_epochs=1", "--config.dataset=image_folder"]
    args.append(f"--config.data_dir={image_folder}")
    logged = trained_here([*args, f"--workdir={tmp_path / 'run'}"]).stderr
    parts = ("decoding .*train: 30 image", "decoding .*test: 12 image", "validation of 6 images: 1 batch")
    for part in parts:
        assert re.search(rf"^{part}\(s\) \.\.\.$", logged, re.MULTILINE), logged
        assert re.search(rf"^{part}\(s\): [\d.]+ s$", logged, re.MULTILINE), logged
    assert re.search(r"^test of 12 images: 1 batch\(s\): [\d.]+ s$", logged, re.MULTILINE), logged
    assert re.search(r"[\r\n]compiled the training call of \d+ step\(s\) in [\d.]+ s\n", logged), logged
    assert "epoch 1/1: 100%" in logged  # the training's own bar, drawn into logs too


@pytest.mark.slow
def test_a_run_on_a_terminal_shows_decoding_validation_and_test_progress(
    tmp_path, compile_cache, image_folder
):
    args = [
        *TINY,
        "--config.num_epochs=1",
        "--config.dataset=image_folder",
        f"--config.data_dir={image_folder}",
    ]
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # bars need a width
    process = subprocess.Popen(
        [sys.executable, "main.py", *args, f"--workdir={tmp_path / 'run'}"],
        cwd=REPO,
        env=environment(compile_cache),
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    chunks = []

    def read_all():
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed with the process
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read_all)
    reader.start()
    assert process.wait(timeout=HANG_GUARD_SECONDS) == 0
    reader.join(timeout=HANG_GUARD_SECONDS)
    os.close(primary)
    shown = b"".join(chunks).decode(errors="replace")
    bars = (f"decoding {image_folder / 'train'}:", "epoch 1/1: 100%", "validation of 6 images:", "test of")
    for bar in bars:
        assert bar in shown, shown[-3000:]
