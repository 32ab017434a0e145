"""``python -m flax_resnets input_pipeline``: training-pipeline throughput (images/s, augmentation
on) of tf.data for one dataset."""

from __future__ import annotations

import time

from flax_resnets.cli import command_parser
from flax_resnets.data.sources import DATASET_NAMES, load_dataset
from flax_resnets.data.tfdata import train_batches
from flax_resnets.errors import InputError


def main(argv: list[str]) -> int:
    parser = command_parser("input_pipeline", __doc__)
    parser.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2, help="epochs to time after one warm-up epoch")
    parser.add_argument("--no_download", action="store_true")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.epochs < 1:
        raise InputError(
            f"--batch_size and --epochs must be positive, got {args.batch_size} and {args.epochs}."
        )
    started = time.perf_counter()
    dataset = load_dataset(args.dataset, data_dir=args.data_dir, download=not args.no_download)
    print(f"loaded {args.dataset}: {len(dataset.train)} train images in {time.perf_counter() - started:.1f}s")
    for epoch in range(args.epochs + 1):
        started, images = time.perf_counter(), 0
        for batch in train_batches(
            dataset.train, dataset, global_batch_size=args.batch_size, seed=0, epoch=epoch
        ):
            images += len(batch["label"])
        rate = images / (time.perf_counter() - started)
        print(f"epoch {epoch}{' (warm-up)' if epoch == 0 else ''}: {images} images, {rate:,.0f} images/s")
    return 0
