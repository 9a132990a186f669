"""``foresight train``: train (or just validate) a video model on a collected dataset."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from foresight.device import add_device_flag
from foresight.errors import ConfigError
from foresight.io import check_out_dir, output_lock

if TYPE_CHECKING:
    from foresight.training import TrainResult


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
    add_device_flag(p, "training device (under torchrun: auto or cuda, one GPU per process)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--allow-other-data",
        action="store_true",
        help="with --resume, continue even though --data is not the dataset the checkpoint "
        "was trained on (compared by episodes, splits, steps, frame size and collection "
        "settings; a moved or copied file is the same dataset); its data order starts afresh",
    )
    p.add_argument("--seed", type=int, default=None, help="training seed (default: config)")
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override the model config's values, checked like its YAML keys "
        "(e.g. train.lr=3e-4 channels=8)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the config, train, report where the results are."""
    from foresight.models import load_model_config
    from foresight.training import TrainOptions, train, with_overrides
    from foresight.training.trainer import TrainingInterrupted

    config = with_overrides(
        load_model_config(args.config, args.overrides), args.max_steps, args.seed
    )
    if args.time_limit is not None and not 0 < args.time_limit < math.inf:
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
        allow_other_data=args.allow_other_data,
    )
    check_out_dir(args.out)
    try:
        with output_lock(args.out, "foresight train"):
            result = train(options)
    except TrainingInterrupted:
        # The trainer has said where it stopped and how to go on; the generic hint does not
        # fit this verb. A Ctrl-C before the trainer ran gets cli.main's generic line.
        return 130
    if result.main:
        Console(stderr=True).print(summary(result))
    return 0


def summary(result: TrainResult) -> str:
    """The last line of a run: where its files are, and what its last validation scored.

    Runs without rollout validation (``train.eval_rollout: false``) or without a valid split
    have no PSNR/SSIM: the line then shows the measures they do have.
    """
    msg = f"step {result.step}: wrote {result.checkpoint} and {result.best}"
    valid = result.valid or {}
    if "ssim_mean" in valid and "psnr_mean" in valid:
        msg += (
            f"; valid ssim {valid['ssim_mean']:.4f}, psnr {valid['psnr_mean']:.2f} "
            f"(mean of {valid.get('num_samples', '?')})"
        )
    elif valid:
        skip = {"step", "split", "sequences", "num_samples", "future_frames"}
        measures = [
            f"{k} {v:.4g}"
            for k, v in valid.items()
            if k not in skip and isinstance(v, int | float) and not isinstance(v, bool)
        ]
        if measures:
            msg += "; valid " + ", ".join(measures[:4])
    best = result.best_score
    if best and best.get("metric") not in (None, "ssim_mean"):
        msg += f"; best {best['metric']} {best['value']:.4g} at step {best['step']}"
    return msg
