"""``python -m flax_resnets predict --workdir=W IMAGE_OR_FOLDER...``: classify images with a trained run.

One line per image (a folder stands for the image files in it): its path and the ``--top_k`` classes
with their probabilities (``--json``: as a list). A run of several seeds needs ``--seed``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from flax_resnets.checks import seed_argument
from flax_resnets.cli import command_parser, positive_int, user_path
from flax_resnets.data.image_folder import IMAGE_SUFFIXES
from flax_resnets.data.images import read_images
from flax_resnets.errors import InputError, shown
from flax_resnets.inference import load_run


def image_paths(targets: list[Path]) -> list[Path]:
    """The image files named, and those inside the folders named, through linked folders too
    (sorted, hidden entries skipped, a folder linked twice read once)."""
    paths = []
    for target in targets:
        if target.is_dir():
            inside = images_inside(target)
            if not inside:
                raise InputError(
                    f"{shown(target)} holds no image files ({', '.join(IMAGE_SUFFIXES)}): pass images."
                )
            paths += inside
        elif target.is_file():
            paths.append(target)
        elif target.exists():
            raise InputError(
                f"{shown(target)} is not a file or a folder (a pipe, a socket or a device): pass images."
            )
        else:
            raise InputError(f"{shown(target)} does not exist: pass image files or folders of them.")
    return paths


def images_inside(folder: Path) -> list[Path]:
    found, seen = [], set()
    for root, folders, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link back up the tree
            folders.clear()
            continue
        seen.add(real)
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        found += [
            Path(root) / name
            for name in files
            if not name.startswith(".")
            and Path(name).suffix.lower() in IMAGE_SUFFIXES
            and (Path(root) / name).is_file()
        ]
    return sorted(found)


def main(argv: list[str]) -> int:
    parser = command_parser("predict", __doc__)
    add = parser.add_argument
    add("targets", nargs="+", type=user_path, help="image files or folders of them")
    add("--workdir", type=user_path, required=True, help="the trained run")
    add("--checkpoint", default="best", help="best, latest or a step number")
    add("--seed", type=seed_argument, help="which member of a run of several seeds")
    add("--top_k", type=positive_int, default=3, help="classes shown per image")
    add("--json", action="store_true", help="a JSON list instead of lines")
    args = parser.parse_args(argv)
    paths = image_paths(args.targets)
    run = load_run(args.workdir, args.checkpoint, args.seed)
    images = read_images(paths, run.channels)
    probabilities = run.predict(images)
    top_k = min(args.top_k, len(run.class_names))
    results = []
    for path, row in zip(paths, probabilities, strict=True):
        best = np.argsort(-row, kind="stable")[:top_k]
        top = [{"class": run.class_names[k], "probability": float(row[k])} for k in best]
        results.append({"path": str(path), "top": top})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            top = ", ".join(f"{item['class']} ({item['probability']:.1%})" for item in result["top"])
            print(f"{shown(result['path'])}: {top}")
    return 0
