"""``foresight evaluate``: task success with a 95% CI, next to PSNR/SSIM/LPIPS per step."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from foresight.progress import make_progress


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
    p.add_argument(
        "--model",
        required=True,
        help="checkpoint path, copy_last, or a planner baseline: oracle, random, zero",
    )
    p.add_argument("--data", type=Path, default=None, help="dataset for prediction metrics")
    p.add_argument("--suite", default="easy", help="task suite: easy, hard or a YAML path")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--samples", type=int, default=3, help="N futures sampled per sequence")
    p.add_argument("--sequences", type=int, default=64, help="valid sequences scored")
    p.add_argument(
        "--future",
        type=int,
        default=None,
        help="predicted frames per sequence (default: the model's eval_future_frames); "
        "give every model the same value to compare them",
    )
    p.add_argument("--episodes", type=int, default=None, help="suite episodes (default: suite's)")
    p.add_argument("--planner", default="cem", help="planner preset (cem, mppi) or YAML path")
    p.add_argument("--workers", type=int, default=1, help="parallel planning episodes")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--lpips-weights",
        default=None,
        help="AlexNet/LPIPS weights (else $FORESIGHT_LPIPS_WEIGHTS, else torch hub cache)",
    )
    p.add_argument(
        "--i3d",
        default=None,
        help="Kinetics-400 I3D state dict (pytorch-i3d names) for FVD; without it FVD is n/a",
    )
    p.add_argument("--label", default=None, help="name in reports (default: the run folder's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled futures")
    p.add_argument("--no-control", action="store_true", help="skip planning (prediction only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print a summary table."""
    from foresight.evaluation import evaluate

    console = Console(stderr=True)
    with make_progress(console) as progress:
        result = evaluate(
            args.model,
            args.out,
            data=args.data,
            suite=args.suite,
            samples=args.samples,
            sequences=args.sequences,
            episodes=args.episodes,
            planner=args.planner,
            workers=args.workers,
            device=args.device,
            lpips_weights=args.lpips_weights,
            label=args.label,
            seed=args.seed,
            control=not args.no_control,
            progress=progress,
            future=args.future,
            i3d=args.i3d,
        )
    table = Table(title=f"foresight evaluate: {result['label']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    control = result["control"]
    if "success_rate" in control:
        lo, hi = control["ci95"]
        table.add_row("success rate", f"{control['success_rate']:.2f} (95% CI {lo:.2f}-{hi:.2f})")
        table.add_row("mean final distance", f"{100 * control['mean_final_distance']:.1f} cm")
        table.add_row("seconds per planning step", f"{control['seconds_per_step']:.3f}")
    pred = result["prediction"]
    for name, parts in (pred.get("metrics") or {}).items():
        for agg, curve in parts.items():
            table.add_row(f"{name} {agg.replace('_', '-')}", f"{sum(curve) / len(curve):.3f}")
    if pred.get("fvd"):
        table.add_row("FVD", f"{pred['fvd']['value']:.1f}")
    for name, why in pred.get("unavailable", {}).items():
        table.add_row(name, f"n/a: {why}")
    if "reason" in pred:
        table.add_row("prediction metrics", f"n/a: {pred['reason']}")
    Console().print(table)
    console.print(f"wrote {args.out / 'evaluation.json'}")
    return 0
