"""``foresight evaluate``: judge one model by task success, and beside it by frame metrics.

Two parts, written together to ``RUN_DIR/evaluation.json`` (schema:
:class:`foresight.results.Evaluation`; read by ``foresight report`` and the quickstart):

* prediction quality on the dataset's ``valid`` split: PSNR, SSIM and LPIPS per future step,
  each as mean-of-N and best-of-N over N sampled futures per sequence (the protocol of
  Denton & Fergus 2018 and Castrejon et al. 2019: the best sample is the one whose score
  averaged over the future is best, per sequence and metric);
* control quality: ``foresight plan`` on a task suite (``RUN_DIR/plan``, resumable), with the
  success rate's 95% Wilson interval, mean final distance, seconds per planning step and the
  planner budget used.

What to measure, and how, is an :class:`foresight.results.EvaluateOptions`. Every input is
checked, and the planning run in ``RUN_DIR/plan`` compared with the one asked for, before
any long work.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foresight.batch import ACTIONS, FRAMES, STATES
from foresight.data.dataset import SequenceDataset, frames_at_skip, stored_span
from foresight.data.hdf5 import DemoFile
from foresight.errors import DataError, ForesightError
from foresight.fvd import I3D, frechet_distance, i3d_embeddings, load_i3d
from foresight.metrics import FRAME_METRICS, FrameMetric, rollout_scores
from foresight.models import (
    VideoModel,
    build_model,
    load_model,
    load_model_config,
    untrained_models,
)
from foresight.models.checkpoint import resolve_checkpoint, save_checkpoint
from foresight.parallel import LOCAL, Backend
from foresight.planners.suite import NAMED_POLICIES
from foresight.results import (
    Control,
    EvaluateOptions,
    Evaluation,
    Fvd,
    MetricCurves,
    PlanSummary,
    Prediction,
    Ranking,
)
from foresight.visualize import grid, save_png


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% for ``z = 1.96``)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def resolve_model(model: str, out: Path, device: str) -> tuple[str, VideoModel | None]:
    """The planner's ``--model`` value and the video model (None for planner baselines).

    Untrained baselines (``copy_last``) are built from their preset and saved as
    ``out/model.pt``, so the planner loads them like any checkpoint; a training run directory
    gives its ``best.pt``, else its ``checkpoint.pt``.
    """
    if model in NAMED_POLICIES:
        return model, None
    if model in untrained_models():
        video_model = build_model(load_model_config(model))
        path = save_checkpoint(out / "model.pt", video_model)
        return str(path), video_model.to(device).eval()
    path = resolve_checkpoint(model)
    return str(path), load_model(path, device)


def prediction_windows(
    path: Path, model: VideoModel, sequences: int, future: int | None = None
) -> tuple[SequenceDataset, list[int], str | None]:
    """Evenly spread valid windows of ``context + future`` frames.

    ``future`` defaults to the config's ``eval_future_frames``. When the valid episodes are
    shorter, the longest window they allow, with a note saying so.
    """
    cfg = model.config
    c = cfg.context_frames
    future = cfg.eval_future_frames if future is None else future
    if future < 1:
        raise ForesightError(f"--future must be at least 1, got {future}")
    wanted = c + future
    with DemoFile(path) as f:
        lengths = [frames_at_skip(f.num_samples(d) + 1, cfg.frame_skip) for d in f.split("valid")]
    if not lengths or max(lengths) < c + 1:
        raise DataError(
            f"{path} has no valid episode long enough to predict from {c} context frames"
        )
    length = min(wanted, max(lengths))
    note = None
    if length < wanted:
        note = f"valid episodes allow only {length - c} future frames ({future} asked)"
    dataset = SequenceDataset(
        path,
        length,
        split="valid",
        image_size=cfg.image_size,
        stride=stored_span(length, cfg.frame_skip),  # windows that do not overlap
        frame_skip=cfg.frame_skip,
    )
    idx = np.unique(
        np.linspace(0, len(dataset) - 1, min(sequences, len(dataset))).round().astype(int)
    )
    return dataset, [int(i) for i in idx], note


def _check_fvd_count(sequences: int, data: Path, fvd: bool) -> None:
    if fvd and sequences < 2:
        raise ForesightError(
            f"FVD needs at least 2 valid sequences, {data} gives {sequences} here; "
            "raise --sequences or drop --i3d"
        )


def check_prediction_inputs(
    model: VideoModel, data: Path, sequences: int, future: int | None, fvd: bool
) -> None:
    """Raise the errors :func:`evaluate_prediction` would, without scoring anything."""
    dataset, indices, _ = prediction_windows(data, model, sequences, future)
    dataset.close()
    _check_fvd_count(len(indices), data, fvd)


@torch.no_grad()
def evaluate_prediction(
    model: VideoModel,
    data: Path,
    out: Path,
    samples: int,
    sequences: int,
    metrics: list[FrameMetric],
    device: str,
    seed: int,
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
    future: int | None = None,
    on_start: Callable[[int], None] | None = None,
    i3d: I3D | None = None,
) -> Prediction:
    """Score ``samples`` imagined futures per valid sequence; write ``out/strip.png``.

    ``future`` predicted frames per sequence (default: the config's ``eval_future_frames``).
    With an ``i3d`` network, also FVD between the true videos and every sampled video
    (context + future frames).
    """
    dataset, indices, note = prediction_windows(data, model, sequences, future)
    _check_fvd_count(len(indices), data, i3d is not None)
    if on_start is not None:
        on_start(len(indices))
    c = model.config.context_frames
    gen = torch.Generator(device=device).manual_seed(seed)
    sums: dict[str, dict[str, torch.Tensor]] = {}
    strip_rows: list[np.ndarray] = []
    real_emb: list[torch.Tensor] = []
    fake_emb: list[torch.Tensor] = []
    for start in range(0, len(indices), batch_size):
        items = [dataset[i] for i in indices[start : start + batch_size]]
        batch = {k: torch.stack([it[k] for it in items]).to(device) for k in items[0]}
        frames = batch[FRAMES]
        pred = model.rollout(
            frames[:, :c], batch[STATES][:, :c], batch[ACTIONS], samples, generator=gen
        )
        scores = rollout_scores(pred.float().clamp(0, 1), frames[:, c:], metrics)
        for name, parts in scores.items():
            for agg, value in parts.items():
                total = sums.setdefault(name, {}).get(agg)
                sums[name][agg] = value.sum(0) if total is None else total + value.sum(0)
        if i3d is not None:
            real_emb.append(i3d_embeddings(i3d, frames))
            context = frames[:, :c, None].expand(-1, -1, samples, -1, -1, -1).transpose(1, 2)
            videos = torch.cat([context, pred.to(frames.dtype).clamp(0, 1)], 2)  # (B, N, T, ...)
            fake_emb.append(i3d_embeddings(i3d, videos.flatten(0, 1)))
        if not strip_rows:
            for b in range(min(4, len(frames))):
                strip_rows.append(frames[b, c:].cpu().numpy())
                strip_rows += [pred[b, s].float().cpu().numpy() for s in range(min(2, samples))]
        if on_batch is not None:
            on_batch(len(items))
    dataset.close()
    n = len(indices)
    result_metrics = {
        name: MetricCurves(
            mean_of_n=tuple(float(v) for v in (parts["mean"] / n)),
            best_of_n=tuple(float(v) for v in (parts["best"] / n)),
        )
        for name, parts in sums.items()
    }
    save_png(grid(np.stack(strip_rows), scale=2), out / "strip.png")
    protocol = (
        f"{n} valid sequences, {c} context frames, {dataset.length - c} "
        f"predicted frames from the true actions; N = {samples} samples per sequence; mean-of-N "
        "averages the samples at each step, best-of-N takes per sequence the sample whose "
        "score averaged over the future is best (per metric)"
    )
    fvd = None
    if i3d is not None:
        real, fake = torch.cat(real_emb).numpy(), torch.cat(fake_emb).numpy()
        fvd = Fvd(
            value=frechet_distance(real, fake),
            real_videos=len(real),
            generated_videos=len(fake),
            frames=dataset.length,
            note="I3D on context + predicted frames at 224x224; with few videos FVD is "
            "biased upwards, so compare models only at equal counts",
        )
    return Prediction(
        protocol=protocol + (f"; {note}" if note else ""),
        fvd=fvd,
        samples=samples,
        sequences=n,
        metrics=result_metrics,
        strip="strip.png",
        strip_layout="per sequence: true future, then samples; columns are future steps",
    )


def evaluate(
    model: str,
    out: Path,
    data: Path | None = None,
    options: EvaluateOptions | None = None,
    device: str = "auto",
    label: str | None = None,
    progress: Any = None,
    overwrite: bool = False,
    backend: Backend = LOCAL,
) -> Evaluation:
    """Evaluate one model; write ``out/evaluation.json`` and return its content.

    The inputs are checked first, then the planning part runs (resuming ``out/plan``), then
    the prediction part, so that a mistake is reported before any long work.

    Args:
        model: A checkpoint path, ``copy_last``, or a planner baseline (``oracle``, ``random``,
            ``zero``).
        out: Run directory.
        data: Dataset for prediction metrics (None: prediction metrics n/a).
        options: What to measure and how (None: the defaults).
        device: ``auto``, ``cpu`` or ``cuda``.
        label: Display name in reports (default: the run directory's name).
        progress: A rich Progress to report on (optional).
        overwrite: Replace a planning run in ``out/plan`` made with other settings (model,
            suite, planner) instead of refusing it; it is planned again from the start. Another
            episode count is not another setting: the episodes done are kept.
        backend: Where the planning episodes run (:mod:`foresight.parallel`).

    Raises:
        ForesightError: A bad input, or ``out/plan`` holds a run with other settings and
            ``overwrite`` is false.
    """
    from foresight.device import resolve_device
    from foresight.perceptual import LpipsUnavailable, lpips_metric
    from foresight.planners.config import PlannerConfig, load_planner
    from foresight.planners.suite import run_suite

    opts = options or EvaluateOptions()
    planner: str | PlannerConfig = opts.planner
    if opts.control and opts.planner_overrides:
        planner = load_planner(opts.planner, opts.planner_overrides)
    out.mkdir(parents=True, exist_ok=True)
    device = str(resolve_device(device))
    plan_model, video_model = resolve_model(model, out, device)
    unavailable: dict[str, str] = {}
    i3d_net = None
    if opts.i3d is None:
        unavailable["fvd"] = (
            "no I3D weights given: pass --i3d PATH (a Kinetics-400 I3D state dict); "
            "none ship with foresight and none are downloaded"
        )
    elif video_model is not None and data is not None:
        i3d_net = load_i3d(opts.i3d, device)
    metrics = list(FRAME_METRICS)
    if video_model is not None and data is not None:
        check_prediction_inputs(
            video_model, Path(data), opts.sequences, opts.future, i3d_net is not None
        )
        try:
            metrics.append(lpips_metric(opts.lpips_weights, device))
        except LpipsUnavailable as err:
            unavailable["lpips"] = str(err)

    # Bars appear once their part has checked its inputs: an error before any work is then
    # the only line on the screen (a bar is drawn again, as it stood, when the display ends).
    bars: dict[str, Any] = {}

    def start(name: str) -> Callable[[int], None] | None:
        if progress is None:
            return None
        return lambda n: bars.setdefault(name, progress.add_task(name, total=n))

    def advance(name: str, k: int = 1) -> None:
        if progress is not None and name in bars:
            progress.advance(bars[name], k)

    if opts.control:
        suite_result = run_suite(
            plan_model,
            opts.suite,
            out / "plan",
            episodes=opts.episodes,
            planner=planner,
            workers=opts.workers,
            device=device,
            overwrite=overwrite,
            on_start=start("planning"),
            on_episode=lambda rec: advance("planning"),
            backend=backend,
        )
        control = control_from_summary(suite_result.summary, out)
    else:
        control = Control(unavailable="planning skipped (--no-control)")

    ranking = measure_ranking(
        plan_model, video_model, opts, planner, device, start("ranking"), advance
    )

    if video_model is None:
        prediction = Prediction(reason=NAMED_POLICIES[model].about)
    elif data is None:
        prediction = Prediction(reason="no --data given")
    else:
        prediction = evaluate_prediction(
            video_model,
            Path(data),
            out,
            opts.samples,
            opts.sequences,
            metrics,
            device,
            opts.seed,
            on_batch=lambda k: advance("predicting", k),
            future=opts.future,
            on_start=start("predicting"),
            i3d=i3d_net,
        )
    prediction = replace(prediction, unavailable=unavailable)
    result = Evaluation(
        label=label or out.name,
        model=video_model.name if video_model is not None else model,
        checkpoint=None if video_model is None else plan_model,
        options=opts,
        prediction=prediction,
        control=control,
        ranking=ranking,
    )
    result.save(out / "evaluation.json")
    return result


def measure_ranking(
    plan_model: str,
    video_model: VideoModel | None,
    opts: EvaluateOptions,
    planner: Any,
    device: str,
    on_start: Callable[[int], None] | None,
    advance: Callable[[str], None],
) -> Ranking:
    """The open-loop ranking block (:mod:`foresight.planners.ranking`), or why it is n/a."""
    from foresight.planners.ranking import rank_agreement

    if not opts.control:
        return Ranking(unavailable="planning skipped (--no-control)")
    if opts.ranking_states == 0:
        return Ranking(unavailable="not measured (--ranking-states 0)")
    if video_model is None:
        # The simulator is the reference itself; random and zero order no candidates.
        return Ranking(unavailable=NAMED_POLICIES[plan_model].about)
    if on_start is not None:
        on_start(opts.ranking_states)
    ranking, _ = rank_agreement(
        plan_model,
        opts.suite,
        planner,
        opts.ranking_states,
        opts.seed,
        device,
        on_state=lambda _: advance("ranking"),
    )
    return ranking


def control_from_summary(summary: PlanSummary, out: Path) -> Control:
    """The control block from a planning run's ``summary.json`` in ``out/plan``."""
    # Only this run's episodes: one that asks for fewer keeps the others' records and GIFs.
    names = {f"task_{i:04d}.gif" for i in range(summary.episodes)}
    gifs = sorted(g for g in (out / "plan" / "gifs").glob("*.gif") if g.name in names)
    return Control(
        success_rate=summary.success_rate,
        successes=summary.successes,
        episodes=summary.episodes,
        ci95=wilson_interval(summary.successes, summary.episodes),
        mean_final_distance=summary.mean_final_distance,
        seconds_per_step=summary.seconds_per_step,
        model_seconds_per_step=summary.model_seconds_per_step,
        model=summary.model,
        suite=summary.suite,
        planner=summary.planner,
        cost=summary.cost,
        horizon=summary.horizon,
        seed=summary.seed,
        budget=summary.budget,
        gifs=tuple(g.relative_to(out).as_posix() for g in gifs),
    )
