"""The ``foresight`` command line: one entry point, one module per verb."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from foresight import __version__
from foresight.commands import (
    collect,
    data,
    evaluate,
    lpips_export,
    plan,
    quickstart,
    report,
    train,
)
from foresight.errors import ForesightError

#: Every verb's module, in the order ``foresight --help`` lists them.
VERBS = (quickstart, collect, data, train, plan, evaluate, report, lpips_export)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every verb."""
    parser = argparse.ArgumentParser(
        prog="foresight",
        description="Visual foresight: collect pushing data, train video models, plan, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"foresight {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in VERBS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 2, Ctrl-C exits 130."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ForesightError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
