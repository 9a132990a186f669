"""``foresight train``: train (or just validate) a video model on a collected dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from foresight.errors import ConfigError
from foresight.io import check_out_dir, output_lock
from foresight.training.distributed import DEVICE_CHOICES


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``train``."""
    p = subparsers.add_parser(
        "train",
        help="train an action-conditioned video model",
        description="Train any registered video model on a foresight HDF5 dataset. Writes "
        "RUN_DIR/metrics.jsonl, checkpoint.pt (latest), best.pt (best validation SSIM) and "
        "samples/ strips. Multi-GPU: launch the same command with torchrun.",
    )
    p.add_argument(
        "--config", required=True, help="model preset name (e.g. svg_lp) or model YAML path"
    )
    p.add_argument("--data", type=Path, required=True, help="dataset .h5 from 'foresight collect'")
    p.add_argument("--out", type=Path, required=True, help="run folder (RUN_DIR)")
    p.add_argument("--max-steps", type=int, default=None, help="total steps (default: config)")
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="MINUTES",
        help="stop after this many minutes of training steps (validation excluded, summed "
        "over resumes), then validate and checkpoint; for equal-time comparisons",
    )
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="default: auto")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--seed", type=int, default=None, help="training seed (default: config)")
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the config, train, report where the results are."""
    from foresight.models import load_model_config
    from foresight.training import TrainOptions, train, with_overrides

    config = with_overrides(load_model_config(args.config), args.max_steps, args.seed)
    if args.time_limit is not None and args.time_limit <= 0:
        raise ConfigError(
            f"--time-limit must be a positive number of minutes, got {args.time_limit}"
        )
    options = TrainOptions(
        config,
        args.data,
        args.out,
        args.device,
        args.resume,
        not args.no_progress,
        time_limit_s=None if args.time_limit is None else 60.0 * args.time_limit,
    )
    check_out_dir(args.out)
    try:
        with output_lock(args.out, "foresight train"):
            result = train(options)
    except KeyboardInterrupt:
        # The trainer has said how to resume; the generic hint does not fit this verb.
        return 130
    if result.main:
        msg = f"step {result.step}: wrote {result.checkpoint} and {result.best}"
        if result.valid is not None:
            msg += (
                f"; valid ssim {result.valid['ssim_mean']:.4f}, "
                f"psnr {result.valid['psnr_mean']:.2f} (mean of {result.valid['num_samples']})"
            )
        Console(stderr=True).print(msg)
    return 0
