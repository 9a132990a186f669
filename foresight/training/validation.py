"""Validation during training: the model's own cheap measures, and scored rollouts.

The validation windows hold ``context_frames + eval_future_frames`` frames (longer than the
training windows, as in the BAIR protocol of Denton & Fergus 2018: train on 2+10, judge on
2+28). On their first ``window`` frames the model's
:meth:`~foresight.models.base.VideoModel.validation_step` gives its cheap measures (the loss;
a likelihood for models that have one). With ``train.eval_rollout`` the model also imagines
``eval_samples`` futures per window from the true actions; PSNR and SSIM
(:mod:`foresight.metrics`) are reported per step as mean-of-N and best-of-N, with PNG and GIF
strips of true against imagined futures. ``train.best_metric`` names the measure that picks
``best.pt``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foresight.batch import ACTIONS, FRAMES, STATES, frames_as
from foresight.data.dataset import SequenceDataset, frames_at_skip
from foresight.data.hdf5 import DemoFile
from foresight.errors import ConfigError, DataError
from foresight.metrics import FRAME_METRICS, rollout_scores
from foresight.models.base import ModelConfig, VideoModel
from foresight.training.precision import Precision
from foresight.training.state import derived_seed, preserved_rng
from foresight.visualize import grid, save_gif, save_png

#: Sequences and samples drawn in the PNG/GIF strips.
STRIP_SEQUENCES = 4
STRIP_SAMPLES = 2


@dataclass
class ValidationSet:
    """Fixed held-out windows, the same at every validation so curves are comparable.

    Attributes:
        dataset: Windows of the ``valid`` split, or None when there are none to use.
        indices: The windows used (evenly spread over the split).
        future_frames: Predicted frames per window.
        note: Why the set differs from what the config asks for (or None).
    """

    dataset: SequenceDataset | None
    indices: list[int]
    future_frames: int
    note: str | None = None


def make_validation_set(path: Path, config: ModelConfig) -> ValidationSet:
    """Cut validation windows of ``context_frames + eval_future_frames`` frames.

    When the valid episodes are shorter, falls back to the longest window they allow (and
    says so in ``note``); with no usable valid episode, returns a set with no dataset.
    """
    c = config.context_frames
    wanted = c + config.eval_future_frames
    with DemoFile(path) as f:
        lengths = [
            frames_at_skip(f.num_samples(d) + 1, config.frame_skip) for d in f.split("valid")
        ]
    if not lengths:
        return ValidationSet(None, [], 0, f"{path} has no valid episodes: validation skipped")
    length = min(wanted, max(lengths))
    if length < c + 1:
        return ValidationSet(
            None,
            [],
            0,
            f"valid episodes have {max(lengths)} frames, too few for {c} context "
            "frames and one future frame: validation skipped",
        )
    note = None
    if length < wanted:
        note = (
            f"valid episodes have at most {max(lengths)} frames: validating on {c} context + "
            f"{length - c} future frames instead of the {config.eval_future_frames} "
            "eval_future_frames asks for"
        )
    try:
        dataset = SequenceDataset(
            path,
            length,
            split="valid",
            image_size=config.image_size,
            frame_skip=config.frame_skip,
        )
    except DataError as err:  # only reachable if the file changed under us
        return ValidationSet(None, [], 0, f"validation skipped: {err}")
    wanted_n = config.train.eval_batches * config.train.batch_size
    indices = np.unique(np.linspace(0, len(dataset) - 1, wanted_n).round().astype(int))
    return ValidationSet(dataset, [int(i) for i in indices], length - c, note)


def _batches(vset: ValidationSet, batch_size: int) -> list[dict[str, torch.Tensor]]:
    assert vset.dataset is not None
    out = []
    for i in range(0, len(vset.indices), batch_size):
        items = [vset.dataset[j] for j in vset.indices[i : i + batch_size]]
        out.append({k: torch.stack([it[k] for it in items]) for k in items[0]})
    return out


@dataclass(frozen=True)
class ValidRecord:
    """One validation pass: the ``valid`` line of ``metrics.jsonl``, typed.

    Attributes:
        step: Training step validated at.
        sequences: Validation sequences scored.
        measures: Every scalar measure by name: the model's own
            (:meth:`~foresight.models.base.VideoModel.validation_step`: ``loss``, ...) and,
            with rollout validation, ``<metric>_mean`` and ``<metric>_best``
            (:func:`rollout_measures`).
        curves: With rollout validation, ``<metric>_<kind>_per_step``: the score of each
            future step.
        num_samples: Futures sampled per sequence (None without rollout validation).
        future_frames: Future frames rolled out (None likewise).
    """

    step: int
    sequences: int
    measures: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)
    num_samples: int | None = None
    future_frames: int | None = None

    def line(self, per_step: bool = True) -> dict[str, Any]:
        """The record as ``metrics.jsonl`` holds it (``best.pt`` keeps it without curves)."""
        out: dict[str, Any] = {"step": self.step, "split": "valid", "sequences": self.sequences}
        out.update(self.measures)
        if self.num_samples is not None:
            out.update(num_samples=self.num_samples, future_frames=self.future_frames)
        if per_step:
            out.update(self.curves)
        return out

    def describe(self) -> str:
        """One console line: the rollout scores, else the model's measures."""
        m = self.measures
        if {"psnr_mean", "psnr_best", "ssim_mean", "ssim_best"} <= set(m):
            return (
                f"psnr {m['psnr_mean']:.2f} (best of {self.num_samples} {m['psnr_best']:.2f}), "
                f"ssim {m['ssim_mean']:.4f} (best {m['ssim_best']:.4f})"
            )
        return ", ".join(f"{k} {v:.4g}" for k, v in m.items()) or "no measures"


def rollout_measures() -> list[str]:
    """Keys of the scored-rollout measures in a ``valid`` record (``psnr_mean``, ...)."""
    return [f"{m.name}_{kind}" for m in FRAME_METRICS for kind in ("mean", "best")]


def _window(batch: dict[str, torch.Tensor], model: VideoModel) -> dict[str, torch.Tensor] | None:
    """The first training window of each validation sequence, frames in the model's dtype."""
    length = model.config.window
    if batch[FRAMES].shape[1] < length:
        return None
    return {
        FRAMES: frames_as(batch[FRAMES][:, :length], type(model).frame_dtype),
        STATES: batch[STATES][:, :length],
        ACTIONS: batch[ACTIONS][:, : length - 1],
    }


@torch.no_grad()
def check_best_metric(model: VideoModel, vset: ValidationSet, device: torch.device) -> None:
    """Fail before training if ``train.best_metric`` is not a measure validation will log.

    Raises:
        ConfigError: The metric is not among the validation measures of this model.
    """
    train = model.config.train
    available = rollout_measures() if train.eval_rollout else []
    if train.best_metric in available or vset.dataset is None:
        return
    was_training = model.training
    model.eval()
    with preserved_rng():
        batch = {k: v.to(device) for k, v in _batches(vset, 1)[0].items()}
        window = _window(batch, model)
        if window is not None:
            available += list(model.validation_step(window))
    model.train(was_training)
    if train.best_metric not in available:
        raise ConfigError(
            f"train.best_metric '{train.best_metric}' is not a validation measure of "
            f"{model.config.model} (available: {', '.join(available) or 'none'}); set "
            "train.best_metric and train.best_mode in the model config"
        )


@torch.no_grad()
def validate(
    model: VideoModel,
    vset: ValidationSet,
    step: int,
    device: torch.device,
    precision: Precision,
    samples_dir: Path | None,
    on_strip: Callable[[np.ndarray], None] | None = None,
) -> ValidRecord:
    """The model's validation measures and, with ``train.eval_rollout``, scored rollouts.

    Sampling uses its own seeded generator (the same every validation, so scores at different
    steps differ only by the model) and leaves the global generators as they were, so
    validating never changes what training does next.

    Args:
        model: The (unwrapped) model; returned to its previous train/eval mode afterwards.
        vset: Validation windows from :func:`make_validation_set` (with a dataset).
        step: Training step, for the record and file names.
        device: Where the model lives.
        precision: Mixed precision the rollouts run under.
        samples_dir: Folder for ``step_<step>.png``/``.gif`` (None: no pictures).
        on_strip: Called with the PNG strip ``(H, W, 3)`` uint8 once it is written (e.g. to
            hand it to experiment trackers).

    Returns:
        The measures of :meth:`~foresight.models.base.VideoModel.validation_step` (``loss``,
        ...; when the windows are at least a training window long) and, for rollouts, for
        each metric ``<m>_mean``, ``<m>_best`` (averaged over steps) and the curves
        ``<m>_mean_per_step``, ``<m>_best_per_step``.
    """
    config = model.config
    c, n = config.context_frames, config.train.eval_samples
    rollouts = config.train.eval_rollout
    was_training = model.training
    model.eval()
    sums: dict[str, dict[str, torch.Tensor]] = {}
    measures: dict[str, float] = {}
    count = 0
    strip: tuple[torch.Tensor, torch.Tensor] | None = None
    with preserved_rng():
        torch.manual_seed(derived_seed(config.train.seed, 1))
        gen = torch.Generator(device=device).manual_seed(derived_seed(config.train.seed, 2))
        for batch in _batches(vset, config.train.batch_size):
            batch = {k: v.to(device) for k, v in batch.items()}
            frames = batch[FRAMES]
            window = _window(batch, model)
            with precision.autocast():
                if rollouts:
                    pred = model.rollout(
                        frames[:, :c], batch[STATES][:, :c], batch[ACTIONS], n, generator=gen
                    )
                if window is not None:
                    for key, value in model.validation_step(window).items():
                        measures[key] = measures.get(key, 0.0) + float(value) * len(frames)
            count += len(frames)
            if not rollouts:
                continue
            pred = pred.float()
            scores = rollout_scores(pred, frames[:, c:])
            for name, kinds in scores.items():
                for kind, per_seq in kinds.items():
                    acc = sums.setdefault(name, {}).get(kind, 0.0)
                    sums[name][kind] = acc + per_seq.sum(dim=0)
            if strip is None:
                strip = (
                    frames[:STRIP_SEQUENCES].cpu(),
                    pred[:STRIP_SEQUENCES, :STRIP_SAMPLES].cpu(),
                )
    model.train(was_training)
    means = {k: v / count for k, v in measures.items()}
    curves: dict[str, list[float]] = {}
    for metric in FRAME_METRICS if rollouts else ():
        for kind, total in sums[metric.name].items():
            curve = (total / count).tolist()
            means[f"{metric.name}_{kind}"] = float(np.mean(curve))
            curves[f"{metric.name}_{kind}_per_step"] = [round(v, 6) for v in curve]
    if samples_dir is not None and strip is not None:
        image = write_strips(*strip, c, samples_dir / f"step_{step:06d}")
        if on_strip is not None:
            on_strip(image)
    if not rollouts:
        return ValidRecord(step, count, means)
    return ValidRecord(step, count, means, curves, n, vset.future_frames)


def write_strips(frames: torch.Tensor, pred: torch.Tensor, context: int, stem: Path) -> np.ndarray:
    """PNG rows (true, then each sample, per sequence) and a GIF of them side by side.

    Args:
        frames: ``(K, Tc + T, C, H, W)`` true frames, context included.
        pred: ``(K, S, T, C, H, W)`` imagined futures.
        context: ``Tc``, the observed frames (shown on every row).
        stem: Output path without suffix.

    Returns:
        The PNG's image, ``(H, W, 3)`` uint8.
    """
    k, s = pred.shape[:2]
    ctx = frames[:, None, :context].expand(-1, s, -1, -1, -1, -1)
    imagined = torch.cat([ctx, pred], dim=2)  # (K, S, Tc + T, C, H, W)
    rows = torch.cat([frames[:, None], imagined], dim=1)  # (K, 1 + S, Tc + T, C, H, W)
    scale = max(1, 64 // frames.shape[-1])
    image = grid(rows.flatten(0, 1).numpy(), scale=scale)
    save_png(image, stem.with_suffix(".png"))
    # GIF frame t: one row per sequence, true beside each sample.
    movie = rows.permute(2, 0, 1, 3, 4, 5).numpy()  # (Tc + T, K, 1 + S, C, H, W)
    save_gif(np.stack([grid(m, scale=scale) for m in movie]), stem.with_suffix(".gif"))
    return image
