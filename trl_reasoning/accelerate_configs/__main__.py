"""``python -m trl_reasoning.accelerate_configs NAME`` prints the config's path; ``--list`` lists the names.

accelerate launch --config_file $(python -m trl_reasoning.accelerate_configs zero3) recipes/grpo.py ...
"""

from __future__ import annotations

import argparse
import sys

from . import CONFIG_NAMES, available_configs, config_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trl_reasoning.accelerate_configs",
        description="Print the path of an accelerate config shipped with trl-reasoning, for "
        "`accelerate launch --config_file $(python -m trl_reasoning.accelerate_configs zero3) ...`.",
    )
    parser.add_argument("name", nargs="?", help=f"config name: {', '.join(CONFIG_NAMES)}")
    parser.add_argument("--list", action="store_true", help="list the shipped configs with a description each")
    args = parser.parse_args(argv)
    if args.list:
        width = max(map(len, CONFIG_NAMES))
        for name, description in available_configs().items():
            print(f"{name:<{width}}  {description}")
        return 0
    if args.name is None:
        parser.print_usage(sys.stderr)
        print(f"error: give a config name ({', '.join(CONFIG_NAMES)}) or --list", file=sys.stderr)
        return 2
    try:
        path = config_path(args.name)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(path.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
