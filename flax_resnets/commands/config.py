"""``python -m flax_resnets config [FILE[:ARG]] [--config.FIELD=VALUE ...]``: every field of a config,
its value and what it means, resolved as ``main.py`` resolves it; a value other than the paper's
recipe's for that dataset is marked ``*``.

    python -m flax_resnets config configs/cifar10_resnet18.py --config.num_seeds=3
"""

from __future__ import annotations

from flax_resnets import checks
from flax_resnets import config as configs
from flax_resnets.cli import command_parser, load_config_file, parse_command


def main(argv: list[str]) -> int:
    parser = command_parser("config", __doc__)
    parser.add_argument("file", nargs="?", help="a config file, e.g. configs/quickstart.py (or FILE:ARG)")
    args, overrides = parse_command(parser, argv)
    config = load_config_file(args.file) if args.file else configs.default_config()
    config = checks.with_overrides(config, overrides)
    checks.validate_config(config)
    defaults = configs.default_config(dataset=config.dataset)
    width = max(map(len, configs.FIELDS))
    for field, meaning in configs.FIELDS.items():
        changed = "*" if config[field] != defaults[field] else " "
        value = configs.shown_value(config[field]).strip("`")
        print(f"{field:<{width}} {changed} {value:<14} {meaning.replace('`', '')}")
    return 0
