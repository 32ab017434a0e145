"""Small modules tested directly: a run's provenance."""

import subprocess
from pathlib import Path

import ml_collections
import pytest

from flax_resnets.runs import provenance


def test_the_commit_is_the_checkouts_marked_dirty_or_the_one_the_source_travelled_with(monkeypatch):
    monkeypatch.delenv("FLAX_RESNETS_COMMIT", raising=False)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    if not head:
        pytest.skip("not a git checkout (a source copy without .git)")
    assert provenance.source_commit() in (head, head + "-dirty")
    monkeypatch.setenv("FLAX_RESNETS_COMMIT", "0123abc")
    assert provenance.source_commit() == "0123abc"


def test_run_json_records_every_member_seed_the_data_and_the_training_time():
    class Data:
        def summary(self):
            return {"class_names": ["a", "b"], "train": 8}

    config = ml_collections.ConfigDict(
        dict(model="resnet8", dtype="float32", seed=5, num_seeds=3, dataset="image_folder", data_dir="/d")
    )
    history = [{"seconds": 1.5}, {"seconds": 2.0}]
    record = provenance.run_record(config, Data(), history)
    assert record["seeds"] == [5, 6, 7] and record["epochs"] == 2 and record["wall_seconds"] == 3.5
    data = {"dataset": "image_folder", "data_dir": "/d", "class_names": ["a", "b"], "train": 8}
    assert record["data"] == data
    assert record["device"] and record["versions"]["jax"]
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():  # the processor as the OS names it (where it says)
        named = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if ":" in line]
        assert record["processor"] in named
    assert record["processor"]
