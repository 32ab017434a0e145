"""``python -m flax_resnets export --workdir=W --format=torch --out=model.pt``: a trained run's model
for other frameworks.

``--format=torch`` writes the PyTorch twin's ``state_dict`` (``model.pt``), ``model.pt.json`` (the
model, its architecture, classes, input size and normalisation) and ``flax_resnets_twins.py``
beside them, a module that imports torch alone:

    import json, torch, flax_resnets_twins
    spec = json.load(open("model.pt.json"))
    model = flax_resnets_twins.build(spec["architecture"]).eval()
    model.load_state_dict(torch.load("model.pt"))

The model takes 32x32 images (the JSON's ``input_size``) with the run's channels: resize others
first. ``--format=npz`` writes every parameter and BatchNorm statistic as a named array (its Flax
path) and ``model.npz.json``: the same description, with the arrays' layout instead of the PyTorch
architecture and module. ``--checkpoint`` and ``--seed`` choose the model as ``predict`` does.
"""

from __future__ import annotations

from flax_resnets.checks import seed_argument
from flax_resnets.cli import command_parser, output_file, user_path
from flax_resnets.errors import InputError
from flax_resnets.inference import load_run
from flax_resnets.inference.export import FORMATS


def main(argv: list[str]) -> int:
    parser = command_parser("export", __doc__)
    parser.add_argument("--workdir", type=user_path, required=True, help="the trained run")
    parser.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default="torch",
        help="torch: the PyTorch twin's state_dict and its module file; npz: every array by its Flax path",
    )
    parser.add_argument("--out", type=output_file, required=True, help="the file to write (.pt or .npz)")
    parser.add_argument("--checkpoint", default="best", help="best, latest or a step number")
    parser.add_argument("--seed", type=seed_argument, help="which member of a run of several seeds")
    args = parser.parse_args(argv)
    suffix, export = FORMATS[args.format]
    if args.out.suffix != suffix or args.out.is_dir():
        raise InputError(
            f"--out for --format={args.format} must be a file name ending in {suffix}, got {args.out}."
        )
    if args.format == "torch":
        try:
            import torch  # noqa: F401
        except ImportError as error:
            raise InputError('--format=torch needs PyTorch: pip install -e ".[bench]" (or torch).') from error
    run = load_run(args.workdir, args.checkpoint, args.seed)
    for path in export(run, args.out):
        print(f"wrote {path}")
    return 0
