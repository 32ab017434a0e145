"""``python -m flax_resnets models``: parameters and forward GFLOPs of every model (2 FLOPs per
multiply-accumulate of convolutions and dense layers, padding included; ``models.flops``), from
the models' shapes alone: nothing is initialised.
"""

from __future__ import annotations

from flax_resnets.cli import command_parser, positive_int
from flax_resnets.models import MODELS, abstract_model, count_parameters, require_models
from flax_resnets.models.flops import forward_gflops


def main(argv: list[str]) -> int:
    parser = command_parser("models", __doc__)
    add = parser.add_argument
    add("--num_classes", type=positive_int, default=10)
    add("--input_channels", type=positive_int, default=3)
    add("--models", default=",".join(MODELS), help="comma-separated model names")
    args = parser.parse_args(argv)
    names = args.models.split(",")
    require_models(names)
    print(f"{'model':<10} {'parameters':>12} {'GFLOPs/image':>13}")
    for name in names:
        model = abstract_model(name, num_classes=args.num_classes, input_channels=args.input_channels)
        gflops = forward_gflops(model, (32, 32, args.input_channels))
        print(f"{name:<10} {count_parameters(model):>12,} {gflops:>13.3f}", flush=True)
    return 0
