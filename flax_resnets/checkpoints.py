"""Checkpoints of a run in ``workdir/checkpoints``, with orbax's CheckpointManager.

One manager, one preservation policy that is the union of two: the latest ``keep`` checkpoints
(saved every epoch and every ``checkpoint_every_steps`` steps) and the single best by
validation accuracy (saved at epoch ends, with that metric). Neither policy can delete a
checkpoint the other keeps. Each checkpoint holds the training state and the run's history
(one record per finished epoch), which is everything needed to continue exactly: the data
position and all randomness derive from the step and the config's seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from flax_resnets.errors import InputError

VALIDATION_METRIC = "val_accuracy"


class Checkpoints:
    def __init__(self, directory: Path, *, keep: int = 3, read_only: bool = False):
        policy = checkpoint_managers.AnyPreservationPolicy(
            [
                checkpoint_managers.LatestN(n=keep),
                checkpoint_managers.BestN(
                    get_metric_fn=lambda metrics: metrics[VALIDATION_METRIC],
                    n=1,
                    keep_checkpoints_without_metrics=False,
                ),
            ]
        )
        self.directory = Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                preservation_policy=policy,
                cleanup_tmp_directories=not read_only,
                read_only=read_only,
                create=not read_only,
            ),
            item_names=("state", "history"),
        )

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, history: list[dict], *, val_accuracy: float | None = None) -> None:
        """Save asynchronously; ``val_accuracy`` makes it a candidate for the best checkpoint."""
        metrics = None if val_accuracy is None else {VALIDATION_METRIC: val_accuracy}
        self.manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), history=ocp.args.JsonSave(history)),
            metrics=metrics,
        )

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, list[dict]]:
        """The state (laid out like ``abstract_state``) and history saved at ``step``."""
        if step not in self.steps():
            raise InputError(
                f"There is no checkpoint at step {step} in {self.directory}; "
                f"saved steps: {', '.join(map(str, self.steps())) or 'none'}."
            )
        try:
            restored = self.manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state), history=ocp.args.JsonRestore()
                ),
            )
        except Exception as error:  # orbax raises many types for unreadable files
            raise InputError(
                f"The checkpoint at step {step} in {self.directory} cannot be read ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else 'no details'}); move that step's folder "
                "away to use an earlier checkpoint, or start a new workdir."
            ) from error
        return restored["state"], list(restored["history"])

    def history(self, step: int) -> list[dict]:
        """The epoch records saved with the checkpoint at ``step``."""
        restored = self.manager.restore(step, args=ocp.args.Composite(history=ocp.args.JsonRestore()))
        return list(restored["history"])

    def best_step(self, history: list[dict]) -> int | None:
        """The kept checkpoint with the highest validation accuracy (the latest among ties)."""
        kept = set(self.steps())
        scored = [(r[VALIDATION_METRIC], r["step"]) for r in history if r.get(VALIDATION_METRIC) is not None]
        scored = [item for item in scored if item[1] in kept]
        return max(scored)[1] if scored else None

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Wait for saves in flight, then release the manager."""
        self.manager.close()

    def __enter__(self) -> Checkpoints:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
