"""``foresight quickstart``: collect, train, evaluate and report in one command."""

from __future__ import annotations

import argparse
from pathlib import Path

from foresight.device import add_device_flag, resolve_device
from foresight.flags import add_flags, from_args
from foresight.parallel import Backend


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``quickstart``."""
    p = subparsers.add_parser(
        "quickstart",
        help="run the whole loop on a small default: collect, train, evaluate, report",
        description="Collect a dataset, train the cpu SVG-LP, evaluate it beside the oracle, "
        "random and copy_last baselines on the easy suite, and write the report. About 30 "
        "minutes on 2 CPU cores (--tiny: about 2). Run it again to resume after an interruption.",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--tiny", action="store_true", help="a 2-minute smoke version")
    p.add_argument(
        "--preset",
        default=None,
        help="quickstart preset name or YAML (default: default, or tiny with --tiny)",
    )
    add_device_flag(p, "device for training and planning")
    add_flags(p, Backend)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run or resume the quickstart."""
    from foresight.io import check_out_dir, output_lock
    from foresight.quickstart import run_quickstart

    preset = args.preset or ("tiny" if args.tiny else "default")
    resolve_device(args.device)  # before the first stage, not after the collection
    backend = from_args(Backend, args)
    check_out_dir(args.out)
    with output_lock(args.out, "foresight quickstart"):
        run_quickstart(args.out, preset, args.device, backend)
    return 0
