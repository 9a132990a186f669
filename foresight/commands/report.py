"""``foresight report``: one HTML page and a Markdown twin from evaluation runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``report``."""
    p = subparsers.add_parser(
        "report",
        help="build an HTML/Markdown report from evaluation runs",
        description="Compare models evaluated by 'foresight evaluate': task success next to "
        "offline metrics, per-step curves, strips, episode GIFs, and the Spearman rank "
        "correlation of each offline metric with task success.",
    )
    p.add_argument("runs", type=Path, nargs="+", help="run directories holding evaluation.json")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the report."""
    from foresight.io import check_out_dir, output_lock
    from foresight.report import build_report

    check_out_dir(args.out)
    with output_lock(args.out, "foresight report"):
        html_path, md_path = build_report(args.runs, args.out)
    Console(stderr=True).print(f"wrote {html_path} and {md_path}")
    return 0
