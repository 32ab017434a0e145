"""``python -m flax_resnets export --workdir=W --format=torch --out=model.pt``: a trained run's model
for other frameworks: the PyTorch twin's ``state_dict`` with ``flax_resnets_twins.py`` (torch alone:
``build(json["architecture"])`` makes the model) and a JSON of what it is and takes (32x32 images,
their normalisation), or (``--format=npz``) every array by its Flax path.
"""

from __future__ import annotations

from flax_resnets.checks import seed_argument
from flax_resnets.cli import command_parser, output_file, user_path
from flax_resnets.errors import InputError
from flax_resnets.inference import load_run
from flax_resnets.inference.export import FORMATS


def main(argv: list[str]) -> int:
    parser = command_parser("export", __doc__)
    add = parser.add_argument
    add("--workdir", type=user_path, required=True, help="the trained run")
    add("--format", choices=sorted(FORMATS), default="torch", help="torch: a state_dict; npz: named arrays")
    add("--out", type=output_file, required=True, help="the file to write (.pt or .npz)")
    add("--checkpoint", default="best", help="best, latest or a step number")
    add("--seed", type=seed_argument, help="which member of a run of several seeds")
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
    print(f"exporting {args.workdir}'s {args.checkpoint} checkpoint to {args.out.resolve()}", flush=True)
    for path in export(run, args.out):
        print(f"wrote {path.resolve()}")
    return 0
