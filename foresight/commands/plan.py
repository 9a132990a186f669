"""``foresight plan``: visual-foresight MPC on a fixed, seeded task suite."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import TextColumn

from foresight.device import add_device_flag
from foresight.io import output_lock
from foresight.progress import make_progress


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``plan``."""
    p = subparsers.add_parser(
        "plan",
        help="run visual-foresight MPC on the pushing task suite",
        description="Plan with CEM or MPPI through a video model (or the simulator oracle, or "
        "a random/zero baseline) on a fixed, seeded task suite, and judge by task success. "
        "Writes episodes.jsonl, summary.json and a GIF per episode to --out; re-running the "
        "same command resumes.",
    )
    p.add_argument(
        "--model",
        required=True,
        help="checkpoint .pt, or oracle (the simulator; oracle32: rendering at 32x32), "
        "random or zero (baselines)",
    )
    p.add_argument("--suite", default="easy", help="suite preset (easy, hard) or YAML path")
    p.add_argument("--episodes", type=int, default=None, help="tasks 0..N-1 (default: suite's)")
    p.add_argument("--seed", type=int, default=None, help="suite seed (default: suite's)")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument(
        "--planner",
        default="cem",
        help="planner preset (cem, icem, fast, mppi) or YAML path; a checkpoint's plan: block "
        "overrides its budget (samples, iterations, batch_size, num_samples)",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="parallel worker processes (at most one per core)"
    )
    add_device_flag(p, "model device")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per worker (default: 1 on CPU, use --workers for more cores)",
    )
    p.add_argument("--no-gifs", action="store_true", help="skip the per-episode GIFs")
    p.add_argument(
        "--overwrite", action="store_true", help="replace a run in --out with other settings"
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override the planner config's values, checked like its YAML keys "
        "(e.g. optimizer.samples=128 horizon=8)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Plan every episode, then print the summary table."""
    from foresight.planners.config import load_planner
    from foresight.planners.suite import run_suite, summary_table

    planner = load_planner(args.planner, args.overrides) if args.overrides else args.planner

    console = Console(stderr=True)
    # The bar starts only once run_suite has checked its inputs, so a bad input prints
    # its one-line error and nothing else.
    progress = make_progress(console, TextColumn("{task.fields[rate]}"))
    state = {"bar": None, "successes": 0, "done": 0}

    def on_start(total: int) -> None:
        progress.start()
        state["bar"] = progress.add_task("planning", total=total, rate="")

    def on_episode(rec: dict[str, Any]) -> None:
        state["successes"] += bool(rec["success"])
        state["done"] += 1
        rate = f"success {state['successes']}/{state['done']}"
        progress.update(state["bar"], advance=1, rate=rate)

    with output_lock(args.out, "foresight plan"):
        try:
            result = run_suite(
                model=args.model,
                suite=args.suite,
                out=args.out,
                episodes=args.episodes,
                seed=args.seed,
                planner=planner,
                workers=args.workers,
                device=args.device,
                threads=args.threads,
                gifs=not args.no_gifs,
                overwrite=args.overwrite,
                on_episode=on_episode,
                on_start=on_start,
            )
        finally:
            progress.stop()
    Console().print(summary_table(result.summary))
    wrote = (
        "episodes.jsonl and summary.json"
        if args.no_gifs
        else "episodes.jsonl, summary.json and gifs/"
    )
    console.print(f"wrote {args.out}/{wrote}", soft_wrap=True, highlight=False)
    return 0
