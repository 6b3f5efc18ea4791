"""`rbench` command line: parses arguments and hands off to the command modules.

Each area registers its own sub-commands (harness/commands/*.py: `register(subparsers)` adds a
parser whose `func(args) -> int` does the work). This file holds no logic of its own beyond turning
a `UserError` into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from harness.errors import UserError

# Modules under harness/commands that contribute sub-commands, in help order.
COMMAND_MODULES = ("run", "eval", "model", "data", "sweep", "report", "bench", "demo", "ui")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rbench",
        description="Train recursive reasoning models and baselines; sweep depth vs parameters.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"harness.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"harness.commands.{name}":
                continue  # area not installed in this checkout
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Overrides (key=value) may come before or after options: argparse stops a `nargs="*"`
    # positional at the first option, so collect the stragglers here.
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if a.startswith("-") or "=" not in a]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"rbench: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("rbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
