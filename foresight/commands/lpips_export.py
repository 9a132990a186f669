"""``foresight lpips-export``: torchvision AlexNet weights -> a compact LPIPS file."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``lpips-export``."""
    p = subparsers.add_parser(
        "lpips-export",
        help="turn torchvision's AlexNet checkpoint into a compact LPIPS weights file",
        description="Check torchvision's alexnet-owt-7be5be79.pth (sha256), combine it with the "
        "lpips package's calibration layers and save every LPIPS weight (~10 MB), for "
        "--lpips-weights or $FORESIGHT_LPIPS_WEIGHTS on machines without internet.",
    )
    p.add_argument("weights", type=Path, help="alexnet-owt-7be5be79.pth")
    p.add_argument("--out", type=Path, required=True, help="output .pt file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export."""
    from foresight.io import check_out_file
    from foresight.perceptual import export_compact

    check_out_file(args.out)
    out = export_compact(args.weights, args.out)
    Console(stderr=True).print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0
