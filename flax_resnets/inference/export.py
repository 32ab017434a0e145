"""A trained model for other frameworks, with a JSON beside it saying what the model is and takes:
a PyTorch ``state_dict`` with ``flax_resnets_twins.py`` (a copy of ``twins/torch_modules.py``,
torch alone) to build the model in, or every parameter and BatchNorm statistic as a named array
(its Flax path, Flax's layouts).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from flax_resnets.files import atomic_write, write_json
from flax_resnets.inference.trained import TrainedModel
from flax_resnets.models import named_arrays

TWIN_MODULE = "flax_resnets_twins.py"


def model_arrays(run: TrainedModel) -> dict[tuple[str, ...], np.ndarray]:
    """The model's parameters and BatchNorm statistics by Flax path."""
    return named_arrays(nnx.state(run.model, (nnx.Param, nnx.BatchStat)))


def description_path(out: Path) -> Path:
    """Where the JSON describing an export to ``out`` goes: ``model.pt`` -> ``model.pt.json``."""
    return out.with_name(out.name + ".json")


def description(run: TrainedModel, layout: str) -> dict[str, Any]:
    """What an exported model is and what it takes."""
    return {
        "model": run.name,
        "class_names": list(run.class_names),
        "input_size": [run.image_size, run.image_size],
        "channels": run.channels,
        "layout": layout,
        "normalization": {"mean": list(run.mean), "std": list(run.std), "on": "pixels in [0, 1]"},
        "seed": run.seed,
        "checkpoint_step": run.checkpoint_step,
    }


def export_torch(run: TrainedModel, out: Path) -> list[Path]:
    """``out`` (the twin's state_dict), its JSON and the twin's module file; their paths."""
    import torch

    from flax_resnets.twins import torch_modules
    from flax_resnets.twins.torch_models import architecture, load_flax_weights, torch_model

    twin = torch_model(run.name, run.channels, len(run.class_names))
    load_flax_weights(twin, model_arrays(run))
    serialized = io.BytesIO()  # torch's writer fails a short write with a RuntimeError: ours says why
    torch.save(twin.state_dict(), serialized)
    atomic_write(out, lambda f: f.write(serialized.getvalue()), binary=True)
    module = out.parent / TWIN_MODULE
    atomic_write(module, lambda f: f.write(Path(torch_modules.__file__).read_text()))
    record = {
        **description(run, "NCHW: (images - mean) / std, channels first"),
        "architecture": architecture(run.name, run.channels, len(run.class_names)),
        "module": TWIN_MODULE,
        "state_dict": out.name,
    }
    write_json(description_path(out), record)
    return [out, description_path(out), module]


def export_npz(run: TrainedModel, out: Path) -> list[Path]:
    """``out`` (named arrays) and its JSON; their paths."""
    arrays = {"/".join(path): array for path, array in model_arrays(run).items()}
    atomic_write(out, lambda f: np.savez(f, **arrays), binary=True)
    record = {**description(run, "NHWC; kernels HWIO, dense kernels (in, out)"), "arrays": out.name}
    write_json(description_path(out), record)
    return [out, description_path(out)]


FORMATS = {"torch": (".pt", export_torch), "npz": (".npz", export_npz)}
