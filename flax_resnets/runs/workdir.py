"""A workdir's records of its run, read back by one reader (``read_run``: the trainer, table1,
reports, the sweep and ``load_run`` all read a run through it), and the checks that keep one run
per workdir: made before a run resumes or is evaluated, so that two configs' or two datasets'
checkpoints and metrics never mix.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import ml_collections

from flax_resnets.config import RETIRED_FIELDS, default_config
from flax_resnets.errors import InputError
from flax_resnets.files import read_json_object
from flax_resnets.runs.metrics import read_jsonl

# Fields that may change between the runs of one workdir without changing the results.
MAY_CHANGE_ON_RESUME = (
    "data_dir",
    "download",
    "log_every_steps",
    "distributed",
    "steps_per_call",
    "eval_batch_size",
)


def config_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
    return json.loads(config.to_json())


def checkpoint_steps(directory: Path) -> list[int]:
    """The steps of the checkpoints in ``directory`` (a run's ``checkpoints/``) now, as a new
    checkpoint manager would list them: its whole (committed) step folders."""
    directory = Path(directory)
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


def recorded_config(workdir: Path) -> dict[str, Any] | None:
    """The config a workdir's run was started with, if any (a field it lacks: its default)."""
    path = Path(workdir) / "config.json"
    if not path.exists():
        return None
    recorded = read_json_object(path, "restore it from a backup, or use a new --workdir")
    for field in RETIRED_FIELDS:
        recorded.pop(field, None)
    return {**config_dict(default_config()), **recorded}


def check_continuable(workdir: Path) -> None:
    """Refuse to go on training a run that an earlier version fed through tf.data: the compiled step
    does not draw TensorFlow's crops, so it would not continue as itself (evaluating it is fine)."""
    path = Path(workdir) / "config.json"
    if not path.exists() or not (Path(workdir) / "checkpoints").is_dir():
        return
    if (
        read_json_object(path, "restore it from a backup, or use a new --workdir").get("input_pipeline")
        == "tfdata"
    ):
        raise InputError(
            f"{workdir} holds a run fed by tf.data (an earlier version's input_pipeline), whose crops "
            "this version does not draw, so it cannot go on as the same run: evaluate it (--mode=eval), "
            "or train in a new --workdir."
        )


DATA_RECORD = "data.json"  # the fingerprint of the data a workdir's run read
FINISHED_RUN_FILES = ("config.json", "metrics.jsonl", "eval.json", "run.json")  # what a kept run holds


class UnfinishedRunError(InputError):
    """A folder that holds no finished run (one of ``FINISHED_RUN_FILES`` is missing)."""


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """What a run left in its folder, each file read when first asked for: its config (every field
    it lacks at its default), its epochs, its test result, its record (run.json) and its data's."""

    folder: Path
    config: dict[str, Any]

    @functools.cached_property
    def metrics(self) -> list[dict]:
        path = self.folder / "metrics.jsonl"
        return read_jsonl(path) if path.exists() else []

    @functools.cached_property
    def evaluation(self) -> dict[str, Any] | None:
        return self.read_object("eval.json", "evaluate the run again")

    @functools.cached_property
    def record(self) -> dict[str, Any] | None:
        return self.read_object("run.json", "restore it from a backup (the run's record)")

    @functools.cached_property
    def data(self) -> dict[str, Any] | None:
        return self.read_object(DATA_RECORD, "restore it from a backup (the run's data record)")

    def read_object(self, name: str, fix: str) -> dict[str, Any] | None:
        path = self.folder / name
        return read_json_object(path, fix) if path.exists() else None

    def classes(self) -> tuple[tuple[str, ...], int]:
        """The class names and image channels the run trained on: from its data.json, or, in a run
        kept without one, from its run.json's record of the data (as ``check_same_data`` reads it)."""
        if self.data is not None:
            return tuple(self.data["class_names"]), int(self.data["image_shape"][-1])
        if self.record is not None and isinstance(self.record.get("data"), dict):
            return tuple(self.record["data"]["class_names"]), int(self.record["data"]["channels"])
        raise InputError(
            f"{self.folder} has neither data.json nor a run.json that records its data, so its classes are "
            "unknown: restore one of them from a backup."
        )

    def pixel_statistics(self) -> tuple[list[float], list[float]]:
        """The training pixels' per-channel mean and std, as the run's record has them."""
        if self.record is None:
            raise InputError(
                f"{self.folder} normalised with its training images' statistics, which its run.json records "
                "at the end of training: finish the run first."
            )
        return self.record["data"]["mean"], self.record["data"]["std"]


def read_run(workdir: str | Path, *, finished: bool = False) -> RunFiles:
    """The run in ``workdir`` (``~`` expanded), or one line saying there is none; ``finished``: its
    files all there (else ``UnfinishedRunError``) and whole (else ``InputError``, ``KeyError``...)."""
    folder = Path(workdir).expanduser()
    missing = [name for name in FINISHED_RUN_FILES if finished and not (folder / name).is_file()]
    if missing:
        raise UnfinishedRunError(f"{folder} is not a finished run: {', '.join(missing)} missing")
    config = recorded_config(folder)
    if config is None:
        raise InputError(f"{folder} holds no run (no config.json): pass the workdir of a training run.")
    run = RunFiles(folder, config)
    if finished:
        float(run.evaluation["test_accuracy"]), str(run.config["model"]), str(run.record["finished"])
        [float(member["test_accuracy"]) for member in run.evaluation["seeds"]], len(run.metrics)
    return run


def check_same_data(workdir: Path, dataset: Any, fingerprint: dict[str, Any] | None = None) -> None:
    """Refuse to continue or evaluate a run on other data than it trained on: by its data.json
    (``fingerprint``: ``dataset.fingerprint()`` if made already), else by its run.json's record."""
    path = Path(workdir) / DATA_RECORD
    if path.exists():
        recorded = read_json_object(path, "restore it, or use a new --workdir")
        differences = data_differences(recorded, fingerprint or dataset.fingerprint())
    elif (Path(workdir) / "run.json").exists():
        run = read_json_object(Path(workdir) / "run.json", "restore it, or use a new --workdir")
        differences = data_differences(summary_fields(run.get("data"), dataset), dataset.summary())
    elif (Path(workdir) / "checkpoints").is_dir():
        raise InputError(
            f"{workdir} holds checkpoints but neither data.json nor run.json, so the data it trained on "
            "cannot be checked: restore data.json from a backup, or use a new --workdir."
        )
    else:
        return
    if differences:
        raise InputError(
            f"{workdir} holds a run on other data ({'; '.join(differences)}): point data_dir at the data "
            "it was started with, or use a new --workdir."
        )


def summary_fields(recorded: Any, dataset: Any) -> dict[str, Any]:
    """The fields of a run.json data record that ``dataset.summary()`` has, the pixel statistics
    rounded as the record's were, so that the same data compares equal."""
    if not isinstance(recorded, dict):
        raise InputError("run.json has no record of the data: restore it, or use a new --workdir.")
    summary = dataset.summary()
    fields = {key: recorded.get(key) for key in summary}
    for key in ("mean", "std"):
        if isinstance(fields[key], list) and len(fields[key]) == len(summary[key]):
            close = all(abs(a - b) < 1e-6 for a, b in zip(fields[key], summary[key], strict=True))
            fields[key] = summary[key] if close else fields[key]
    return fields


def data_differences(there: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """How the data recorded for a run differs from the data read now, field by field."""
    differences = []
    for key in sorted(set(there) | set(now)):
        before, after = there.get(key), now.get(key)
        if before == after:
            continue
        if key == "sha256":
            differences.append("the images or labels differ")
        elif key == "class_names":
            differences.append(f"{len(before or [])} classes there, {len(after or [])} now")
        else:
            differences.append(f"{key} {before} there, {after} now")
    return differences


def check_same_run(
    config: ml_collections.ConfigDict,
    workdir: Path,
    fix: str = "use a new --workdir, or the config it was started with",
) -> None:
    """Refuse to mix two configs' checkpoints and metrics in one workdir (``fix``: what to do)."""
    recorded = recorded_config(workdir)
    if recorded is None:
        if (Path(workdir) / "checkpoints").is_dir():
            raise InputError(
                f"{workdir} holds checkpoints but no config.json, so its run cannot be checked: "
                "use a new --workdir."
            )
        return
    current = config_dict(config)
    differing = sorted(
        key
        for key in set(recorded) | set(current)
        if key not in MAY_CHANGE_ON_RESUME and recorded.get(key) != current.get(key)
    )
    if differing:
        changes = ", ".join(f"{k}={recorded.get(k)!r} there, {current.get(k)!r} now" for k in differing)
        raise InputError(f"{workdir} holds a run of a different config ({changes}): {fix}.")
