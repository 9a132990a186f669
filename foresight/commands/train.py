"""``foresight train``: train (or just validate) a video model on a collected dataset."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from foresight.device import device_field
from foresight.errors import ConfigError
from foresight.flags import add_flags, from_args, option, overrides_field
from foresight.io import check_out_dir, output_lock

if TYPE_CHECKING:
    from foresight.training import TrainResult


@dataclass(frozen=True, kw_only=True)
class TrainFlags:
    """The flags of ``foresight train`` (see :class:`foresight.training.TrainOptions`).

    Attributes:
        config: Model preset name or model YAML path.
        data: Dataset from ``foresight collect``.
        out: Run folder.
        max_steps: Total steps (None: the config's).
        time_limit: Minutes of training steps after which to stop (None: no limit).
        device: Training device.
        resume: Continue the run in ``out``.
        allow_other_data: With ``resume``, accept another dataset.
        seed: Training seed (None: the config's).
        progress: Show a live progress bar.
        overrides: ``KEY=VALUE`` overrides of the model config.
    """

    config: str = field(metadata=option("model preset name (e.g. svg_lp) or model YAML path"))
    data: Path = field(metadata=option("dataset .h5 from 'foresight collect'"))
    out: Path = field(metadata=option("run folder (RUN_DIR)"))
    max_steps: int | None = field(default=None, metadata=option("total steps (default: config)"))
    time_limit: float | None = field(
        default=None,
        metadata=option(
            "stop after this many minutes of training steps (validation excluded, summed "
            "over resumes), then validate and checkpoint; for equal-time comparisons",
            metavar="MINUTES",
        ),
    )
    device: str = device_field(
        "training device (under torchrun: auto or cuda, one GPU per process)"
    )
    resume: bool = field(default=False, metadata=option("continue the run in --out"))
    allow_other_data: bool = field(
        default=False,
        metadata=option(
            "with --resume, continue even though --data is not the dataset the checkpoint "
            "was trained on (compared by episodes, splits, steps, frame size and collection "
            "settings; a moved or copied file is the same dataset); its data order starts afresh"
        ),
    )
    seed: int | None = field(default=None, metadata=option("training seed (default: config)"))
    progress: bool = field(
        default=True, metadata=option("no live progress bar", flag="--no-progress")
    )
    overrides: tuple[str, ...] = overrides_field("the model config", "train.lr=3e-4 channels=8")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``train``."""
    p = subparsers.add_parser(
        "train",
        help="train an action-conditioned video model",
        description="Train any registered video model on a foresight HDF5 dataset. Writes "
        "RUN_DIR/metrics.jsonl, checkpoint.pt (latest), best.pt (best validation SSIM) and "
        "samples/ strips. Multi-GPU: launch the same command with torchrun.",
    )
    add_flags(p, TrainFlags)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the config, train, report where the results are."""
    from foresight.models import load_model_config
    from foresight.training import TrainOptions, train, with_overrides
    from foresight.training.trainer import TrainingInterrupted

    flags = from_args(TrainFlags, args)
    config = with_overrides(
        load_model_config(flags.config, flags.overrides), flags.max_steps, flags.seed
    )
    if flags.time_limit is not None and not 0 < flags.time_limit < math.inf:
        raise ConfigError(
            f"--time-limit must be a positive number of minutes, got {flags.time_limit}"
        )
    options = TrainOptions(
        config,
        flags.data,
        flags.out,
        flags.device,
        flags.resume,
        flags.progress,
        time_limit_s=None if flags.time_limit is None else 60.0 * flags.time_limit,
        allow_other_data=flags.allow_other_data,
    )
    check_out_dir(flags.out)
    try:
        with output_lock(flags.out, "foresight train"):
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
    if result.valid is not None:
        msg += f"; valid {result.valid.describe()}"
    best = result.best_score
    if best is not None and best.metric != "ssim_mean":
        msg += f"; {best.describe()}"
    return msg
