"""``foresight plan``: visual-foresight MPC on a fixed, seeded task suite."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import TextColumn

from foresight.device import device_field
from foresight.errors import ConfigError
from foresight.flags import add_flags, from_args, option, overrides_field
from foresight.io import output_lock
from foresight.parallel import Backend
from foresight.progress import make_progress


@dataclass(frozen=True, kw_only=True)
class PlanFlags:
    """The flags of ``foresight plan`` (see :func:`foresight.planners.suite.run_suite`).

    Attributes:
        model: Checkpoint path, training run directory, or a named policy.
        suite: Suite preset or YAML path.
        episodes: Tasks ``0 .. N-1`` (None: the suite's).
        tasks: Only these task ids, comma-separated (``15,42``), instead of ``episodes``.
        seed: Suite seed (None: the suite's).
        out: Run folder.
        planner: Planner preset or YAML path.
        workers: Parallel worker processes.
        device: Model device.
        threads: Torch threads per worker (None: 1 on CPU).
        gifs: Write a GIF per episode.
        overwrite: Replace a run in ``out`` with other settings.
        overrides: ``KEY=VALUE`` overrides of the planner config.
    """

    model: str = field(
        metadata=option(
            "checkpoint .pt, a training run directory (its best.pt, else checkpoint.pt), "
            "or oracle (the simulator; oracle32: rendering at 32x32), random or zero (baselines)"
        )
    )
    suite: str = field(default="easy", metadata=option("suite preset (easy, hard) or YAML path"))
    episodes: int | None = field(default=None, metadata=option("tasks 0..N-1 (default: suite's)"))
    tasks: str | None = field(
        default=None,
        metadata=option(
            "only these task ids, comma-separated (e.g. 15,42: the same tasks as in the "
            "whole suite), instead of --episodes",
            metavar="IDS",
        ),
    )
    seed: int | None = field(default=None, metadata=option("suite seed (default: suite's)"))
    out: Path = field(metadata=option("run directory"))
    planner: str = field(
        default="cem",
        metadata=option(
            "planner preset (cem, icem, fast, mppi) or YAML path; a checkpoint's plan: block "
            "overrides its budget (samples, iterations, batch_size, num_samples)"
        ),
    )
    workers: int = field(
        default=1, metadata=option("parallel worker processes (at most one per core)")
    )
    device: str = device_field("model device")
    threads: int | None = field(
        default=None,
        metadata=option(
            "torch threads per worker (default: 1 on CPU, use --workers for more cores)"
        ),
    )
    gifs: bool = field(default=True, metadata=option("skip the per-episode GIFs", flag="--no-gifs"))
    overwrite: bool = field(
        default=False, metadata=option("replace a run in --out with other settings")
    )
    overrides: tuple[str, ...] = overrides_field(
        "the planner config", "optimizer.samples=128 horizon=8"
    )


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
    add_flags(p, PlanFlags)
    add_flags(p, Backend)
    p.set_defaults(func=run)


def task_ids(text: str | None) -> tuple[int, ...] | None:
    """``--tasks 15,42`` as ids (None when not given).

    Raises:
        ConfigError: Text that is not comma-separated whole numbers.
    """
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--tasks takes comma-separated task ids such as 15,42, got {text!r}"
        ) from None


def run(args: argparse.Namespace) -> int:
    """Plan every episode, then print the summary table."""
    from foresight.planners.config import load_planner
    from foresight.planners.suite import run_suite, summary_table

    flags = from_args(PlanFlags, args)
    backend = from_args(Backend, args)  # checked before any work
    planner = load_planner(flags.planner, flags.overrides) if flags.overrides else flags.planner

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

    with output_lock(flags.out, "foresight plan"):
        try:
            result = run_suite(
                model=flags.model,
                suite=flags.suite,
                out=flags.out,
                episodes=flags.episodes,
                tasks=task_ids(flags.tasks),
                seed=flags.seed,
                planner=planner,
                workers=flags.workers,
                device=flags.device,
                threads=flags.threads,
                gifs=flags.gifs,
                overwrite=flags.overwrite,
                on_episode=on_episode,
                on_start=on_start,
                backend=backend,
            )
        finally:
            progress.stop()
    Console().print(summary_table(result.summary))
    wrote = (
        "episodes.jsonl, summary.json and gifs/"
        if flags.gifs
        else "episodes.jsonl and summary.json"
    )
    console.print(f"wrote {flags.out}/{wrote}", soft_wrap=True, highlight=False)
    return 0
