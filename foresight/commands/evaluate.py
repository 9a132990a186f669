"""``foresight evaluate``: task success with a 95% CI, next to PSNR/SSIM/LPIPS per step."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from foresight.device import device_field
from foresight.flags import add_flags, from_args, option
from foresight.parallel import Backend
from foresight.progress import make_progress
from foresight.results import EvaluateOptions, curve_mean, non_finite_name, non_finite_steps


@dataclass(frozen=True, kw_only=True)
class EvaluateFlags:
    """The flags of ``foresight evaluate`` that say what to evaluate and where.

    How to evaluate is :class:`~foresight.results.EvaluateOptions`, which ``evaluation.json``
    records; these are not recorded.

    Attributes:
        model: Checkpoint path, training run directory, ``copy_last`` or a planner baseline.
        data: Dataset for prediction metrics.
        out: Run folder.
        device: Model device.
        label: Name in reports.
        overwrite: Replace an evaluation in ``out`` planned with other settings.
    """

    model: str = field(
        metadata=option(
            "checkpoint path, a training run directory (its best.pt, else checkpoint.pt), "
            "copy_last, or a planner baseline: oracle, random, zero"
        )
    )
    data: Path | None = field(default=None, metadata=option("dataset for prediction metrics"))
    out: Path = field(metadata=option("run directory"))
    device: str = device_field("model device")
    label: str | None = field(
        default=None, metadata=option("name in reports (default: the run folder's)")
    )
    # It says what to do with an earlier run, not how to evaluate, so it is neither stored in
    # evaluation.json nor in presets.
    overwrite: bool = field(
        default=False,
        metadata=option(
            "replace an earlier evaluation in --out planned with other settings (model, "
            "suite, planner); its planning starts again from the first episode"
        ),
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``evaluate``."""
    p = subparsers.add_parser(
        "evaluate",
        help="judge a model by task success and prediction metrics",
        description="Plan with the model on a task suite (success rate, 95% Wilson CI, final "
        "distance, seconds per step) and score its predictions on the dataset's valid split "
        "(PSNR, SSIM, LPIPS per future step; mean-of-N and best-of-N). Writes "
        "RUN_DIR/evaluation.json; re-running resumes the planning part.",
    )
    add_flags(p, EvaluateFlags)
    add_flags(p, EvaluateOptions)
    add_flags(p, Backend)
    p.set_defaults(func=run)


def _number(value: float | None, digits: int, unit: str = "") -> str:
    """A table value: the number, or what it is when it is missing or not finite."""
    if value is None:
        return "n/a: not recorded"
    if not math.isfinite(value):
        return f"n/a: {non_finite_name(value)}"
    return f"{value:.{digits}f}{unit}"


def run(args: argparse.Namespace) -> int:
    """Evaluate and print a summary table."""
    from foresight.evaluation import evaluate
    from foresight.io import check_out_dir, output_lock

    flags = from_args(EvaluateFlags, args)
    options = from_args(EvaluateOptions, args)
    backend = from_args(Backend, args)  # checked before any work
    console = Console(stderr=True)
    check_out_dir(flags.out)
    with output_lock(flags.out, "foresight evaluate"), make_progress(console) as progress:
        result = evaluate(
            flags.model,
            flags.out,
            data=flags.data,
            options=options,
            device=flags.device,
            label=flags.label,
            progress=progress,
            overwrite=flags.overwrite,
            backend=backend,
        )
    table = Table(title=f"foresight evaluate: {result.label}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    control = result.control
    if control.unavailable is None:
        lo, hi = control.ci95 or (0.0, 1.0)
        table.add_row("success rate", f"{control.success_rate:.2f} (95% CI {lo:.2f}-{hi:.2f})")
        dist = control.mean_final_distance
        table.add_row(
            "mean final distance", _number(None if dist is None else 100 * dist, 1, " cm")
        )
        table.add_row("seconds per planning step", _number(control.seconds_per_step, 3))
        table.add_row("planner budget", control.budget.label() if control.budget else "none")
    pred = result.prediction
    for name, curves in pred.metrics.items():
        for agg in ("mean_of_n", "best_of_n"):
            curve = getattr(curves, agg)
            # Never the mean of the finite steps alone: it would look like a normal score.
            where = non_finite_steps(curve)
            value = f"n/a: {where}" if where else _number(curve_mean(curve), 3)
            table.add_row(f"{name} {agg.replace('_', '-')}", value)
    if pred.fvd is not None:
        table.add_row("FVD", _number(pred.fvd.value, 1))
    for name, why in pred.unavailable.items():
        table.add_row(name, f"n/a: {why}")
    if pred.reason is not None:
        table.add_row("prediction metrics", f"n/a: {pred.reason}")
    Console().print(table)
    console.print(f"wrote {flags.out / 'evaluation.json'}")
    return 0
