"""Verbs that are planned but not built yet: they say so and exit non-zero."""

from __future__ import annotations

import argparse

from foresight.errors import ForesightError


def add_unbuilt(subparsers: argparse._SubParsersAction, name: str, summary: str) -> None:
    """Register ``name`` as a verb that reports it is not built yet."""
    parser = subparsers.add_parser(name, help=f"{summary} (not built yet)")
    parser.add_argument("rest", nargs=argparse.REMAINDER)

    def run(args: argparse.Namespace) -> int:
        raise ForesightError(f"'foresight {name}' is not built yet in this version")

    parser.set_defaults(func=run)
