"""``foresight data``: inspect and preview dataset files."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from foresight.data.hdf5 import DemoFile
from foresight.errors import DataError, ForesightError
from foresight.visualize import grid, save_png


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``data info`` and ``data preview``."""
    p = subparsers.add_parser("data", help="inspect and preview datasets")
    sub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    info = sub.add_parser("info", help="summarize and validate a dataset file")
    info.add_argument("path", type=Path)
    info.set_defaults(func=run_info)
    prev = sub.add_parser("preview", help="write a PNG grid of episode frames")
    prev.add_argument("path", type=Path)
    prev.add_argument("--out", type=Path, required=True, help="output .png")
    prev.add_argument("--episodes", type=int, default=6, help="rows (episodes)")
    prev.add_argument("--frames", type=int, default=10, help="columns (frames, evenly spaced)")
    prev.add_argument("--split", default="all", choices=["all", "train", "valid"])
    prev.add_argument("--scale", type=int, default=2, help="upscale each frame")
    prev.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    prev.set_defaults(func=run_preview)


def _scene_summary(scenes: list) -> str:
    """``"drawn per episode: box 34%, ell 33%, ..."``: the share of each drawn object shape."""
    shapes = [
        o.get("shape", "?") for s in scenes if isinstance(s, list) for o in s if isinstance(o, dict)
    ]
    counts = {k: shapes.count(k) for k in sorted(set(shapes))}
    shares = ", ".join(f"{k} {v / max(len(shapes), 1):.0%}" for k, v in counts.items())
    return f"drawn per episode ({shares})"


def run_info(args: argparse.Namespace) -> int:
    """Print a summary table; validation errors surface as one-line DataErrors."""
    with DemoFile(args.path) as f:
        lengths = [f.num_samples(d) for d in f.demos]
        moved = f.moved_fraction()
        table = Table(title=str(args.path), show_header=False)
        rows = {
            "format": f.format_version,
            "env": f.env_args.get("env_name", "?"),
            "episodes": f"{len(f.demos)} (train {len(f.split('train'))}, "
            f"valid {len(f.split('valid'))})",
            "steps per episode": f"{min(lengths)}"
            if min(lengths) == max(lengths)
            else f"{min(lengths)}-{max(lengths)}",
            "total steps": str(sum(lengths)),
            "frames": f"{f.image_size}x{f.image_size} RGB uint8",
            "objects in scene": str(f.num_objects),
            "raw state size": str(f.state_size),
            "seed": str(f.collect_config.get("seed", "?")),
            "episodes where an object moved > 1 cm": f"{moved:.1%}",
            "file size": f"{args.path.stat().st_size / 1e6:.1f} MB",
        }
        scenes = [f.scene(d) for d in f.demos]
        if any(s is not None for s in scenes):
            rows["scenes"] = _scene_summary(scenes)
        for k, v in rows.items():
            table.add_row(k, str(v))
        empty = [s for s in ("train", "valid") if not f.split(s)]
    Console().print(table)
    if empty:
        # Still a readable file (info reports it), but training needs mask/train.
        Console(stderr=True).print(
            f"[yellow]note:[/] mask/{' and mask/'.join(empty)} "
            + ("lists no episodes: " if len(empty) == 1 else "list no episodes: ")
            + (
                "'foresight train' cannot use this file"
                if "train" in empty
                else "training will skip validation"
            )
        )
    return 0


def run_preview(args: argparse.Namespace) -> int:
    """Rows are episodes, columns evenly spaced frames."""
    from foresight.io import check_out_file

    if args.episodes < 1 or args.frames < 1:
        raise DataError("--episodes and --frames must be at least 1")
    if args.scale < 1:
        raise DataError(f"--scale must be at least 1, got {args.scale}")
    # Before reading the dataset: a picture already there is a user's file until told.
    check_out_file(args.out)
    if args.out.exists() and not args.overwrite:
        raise ForesightError(f"{args.out} exists; pass --overwrite or choose another --out")
    with DemoFile(args.path) as f:
        demos = f.split(args.split)[: args.episodes]
        if not demos:
            raise DataError(f"{args.path} has no episodes in split '{args.split}'")
        t = min(f.num_samples(d) for d in demos) + 1
        idx = np.unique(np.linspace(0, t - 1, min(args.frames, t)).round().astype(int))
        rows = np.stack([f.frames(d, idx) for d in demos])
    save_png(grid(rows, scale=args.scale), args.out)
    Console(stderr=True).print(f"wrote {args.out} ({len(demos)} episodes x {len(idx)} frames)")
    return 0
