"""``python -m flax_resnets config [FILE[:ARG]] [--config.FIELD=VALUE ...]``: every field of a config as
``main.py`` resolves it, its value (``*`` where it is not the paper's recipe's) and what it means.
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
