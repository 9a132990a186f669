"""``foresight collect``: gather random-action pushing episodes into an HDF5 dataset."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console

from foresight.config import load_config, resolve_config
from foresight.data import collect as col
from foresight.errors import DataError
from foresight.progress import make_progress


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``collect``."""
    p = subparsers.add_parser(
        "collect",
        help="collect random-action pushing episodes into HDF5",
        description="Collect interaction-rich random pushing episodes into a robomimic-style "
        "HDF5 file. Interrupted runs resume when the same command is run again.",
    )
    p.add_argument("--out", type=Path, required=True, help="output .h5 file")
    p.add_argument("--episodes", type=int, required=True, help="number of episodes")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (episode i uses (seed, i))")
    p.add_argument("--image-size", type=int, default=None, help="frame size (default: config)")
    p.add_argument("--steps", type=int, default=30, help="actions per episode (T)")
    p.add_argument("--config", default="push", help="env config: preset name or YAML path")
    p.add_argument("--valid-fraction", type=float, default=0.1, help="share of episodes held out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Collect, resume, assemble."""
    from foresight.envs import EnvConfig

    if args.episodes < 1:
        raise DataError(f"--episodes must be at least 1, got {args.episodes}")
    overrides = {} if args.image_size is None else {"image_size": args.image_size}
    env_config = load_config(EnvConfig, resolve_config(args.config, "env"), overrides)
    settings = col.make_settings(args.seed, args.steps, env_config)
    out: Path = args.out
    parts = col.prepare_parts(out, settings, args.overwrite)
    done = col.done_indices(parts)
    todo = [i for i in range(args.episodes) if i not in done]
    console = Console(stderr=True)
    if done & set(range(args.episodes)):
        console.print(
            f"resuming: {args.episodes - len(todo)} of {args.episodes} episodes already saved"
        )
    start = time.perf_counter()
    with make_progress(console) as progress:
        task = progress.add_task(
            "collecting", total=args.episodes, completed=args.episodes - len(todo)
        )
        for _ in col.collect_parts(settings, parts, todo, args.workers):
            progress.advance(task)
        write = progress.add_task("writing HDF5", total=args.episodes)
        col.assemble(
            out,
            parts,
            args.episodes,
            settings,
            args.valid_fraction,
            on_written=lambda: progress.advance(write),
        )
    col.finish(parts)
    seconds = time.perf_counter() - start
    steps = len(todo) * args.steps
    console.print(
        f"wrote {out}: {args.episodes} episodes x {args.steps} steps "
        f"({steps / max(seconds, 1e-9):.0f} env steps/s this run)"
    )
    return 0
