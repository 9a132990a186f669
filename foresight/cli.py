"""The ``foresight`` command line: one entry point, one module per verb."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from foresight import __version__
from foresight.commands import collect, data, plan, train
from foresight.commands.unbuilt import add_unbuilt
from foresight.errors import ForesightError

#: Verbs still to be built, with their one-line summary. A verb moves out of here into its own
#: module under ``foresight.commands`` when it lands.
UNBUILT = {
    "evaluate": "judge a model by task success and prediction metrics",
    "report": "build an HTML/Markdown report from evaluation runs",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every verb."""
    parser = argparse.ArgumentParser(
        prog="foresight",
        description="Visual foresight: collect pushing data, train video models, plan, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"foresight {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (collect, data, train, plan):
        module.add_parser(sub)
    for name, summary in UNBUILT.items():
        add_unbuilt(sub, name, summary)
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
