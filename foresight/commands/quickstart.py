"""``foresight quickstart``: collect, train, evaluate and report in one command."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from foresight.device import device_field, resolve_device
from foresight.flags import add_flags, from_args, option
from foresight.parallel import Backend


@dataclass(frozen=True, kw_only=True)
class QuickstartFlags:
    """The flags of ``foresight quickstart``.

    Attributes:
        out: Output folder.
        tiny: The 2-minute smoke version.
        preset: Quickstart preset name or YAML (None: ``default``, or ``tiny`` with ``tiny``).
        device: Device for training and planning.
    """

    out: Path = field(metadata=option("output folder"))
    tiny: bool = field(default=False, metadata=option("a 2-minute smoke version"))
    preset: str | None = field(
        default=None,
        metadata=option("quickstart preset name or YAML (default: default, or tiny with --tiny)"),
    )
    device: str = device_field("device for training and planning")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``quickstart``."""
    p = subparsers.add_parser(
        "quickstart",
        help="run the whole loop on a small default: collect, train, evaluate, report",
        description="Collect a dataset, train the preset's models (the default: vrnn_fast), "
        "evaluate them beside the oracle, random and copy_last baselines on the easy suite, and "
        "write the report. About 40 minutes on 2 CPU cores (--tiny: about 2; --preset compare, "
        "two families: about 50). Run it again to resume after an interruption.",
    )
    add_flags(p, QuickstartFlags)
    add_flags(p, Backend)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run or resume the quickstart."""
    from foresight.io import check_out_dir, output_lock
    from foresight.quickstart import run_quickstart

    flags = from_args(QuickstartFlags, args)
    preset = flags.preset or ("tiny" if flags.tiny else "default")
    resolve_device(flags.device)  # before the first stage, not after the collection
    backend = from_args(Backend, args)
    check_out_dir(flags.out)
    with output_lock(flags.out, "foresight quickstart"):
        run_quickstart(flags.out, preset, flags.device, backend)
    return 0
