"""``python -m flax_resnets data export``: write a dataset's splits as one uint8 array file.

The file holds the full training and test splits, labels, class names and pixel statistics;
training from it (``data_dir=FILE.npz``) needs neither TensorFlow nor TFDS.
"""

from __future__ import annotations

from flax_resnets.cli import command_parser, output_file, user_path
from flax_resnets.data.arrays import save_arrays
from flax_resnets.data.sources import DATASET_NAMES, read_image_folder, read_tfds
from flax_resnets.errors import InputError


def main(argv: list[str]) -> int:
    parser = command_parser("data", __doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write a dataset as an .npz array file")
    export.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    export.add_argument("--data_dir", type=user_path, help="TFDS data_dir, or the image folder's root")
    export.add_argument("--out", required=True, type=output_file, help="the .npz file to write")
    export.add_argument("--no_download", action="store_true", help="never let TFDS download")
    args = parser.parse_args(argv)
    if args.out.suffix != ".npz":
        raise InputError(f"--out must be a file name ending in .npz, got {str(args.out)!r}.")
    data_dir = str(args.data_dir) if args.data_dir else None
    if args.dataset == "image_folder":
        source = read_image_folder(data_dir)
    else:
        source = read_tfds(args.dataset, data_dir=data_dir, download=not args.no_download)
    save_arrays(args.out, source, compressed=True)
    print(
        f"wrote {args.out.absolute()}: {args.dataset}, {len(source['train'])} training and "
        f"{len(source['test'])} test images of shape {source['train'].images.shape[1:]}, "
        f"{len(source['class_names'])} classes"
    )
    return 0
