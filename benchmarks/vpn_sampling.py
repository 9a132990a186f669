"""Sampling speed of the Video Pixel Network: naive vs fast, and one CEM step with its budget.

A VPN samples each frame sub-pixel by sub-pixel (3 x 32 x 32 = 3072 sequential draws at the
``cpu`` preset). The naive sampler reruns the whole decoder for every draw; the fast one
evaluates the decoder at the new sub-pixel's position only, from cached activations. Both draw
the same uniforms, so they give the same samples (checked here on the rows both sampled).

For ``--samples`` futures sampled at once (as a planner batches candidates), times

* one frame through each sampler, from the same decoder conditioning and uniforms. Every naive
  step is one full decoder pass, whatever the position, so the naive sampler runs only the
  first ``--naive-rows`` rows and its frame time is extrapolated (``x H / rows``);
* fast rollouts of ``--frames`` frames end to end (encoder and ConvLSTM included);
* one CEM planning step (horizon 10, object cost) with the planner budget of the model's config
  (its ``plan:`` block over the ``cem`` preset), on an easy task.

Uses an untrained ``cpu``-preset model (``--config``) unless ``--model`` names a checkpoint;
timing needs no training.

    python benchmarks/vpn_sampling.py [--model run/best.pt] [--samples 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from foresight.envs import EnvSpec, PushEnv, load_suite, sample_tasks
from foresight.models import build_model, load_model, load_model_config
from foresight.models.vpn import VideoPixelNetwork
from foresight.models.vpn_sampling import sample_fast, sample_naive
from foresight.planners import ModelPredictor, MPCPolicy, load_planner
from foresight.planners.config import apply_budget
from foresight.planners.mpc import run_episode


def time_frame(model: VideoPixelNetwork, samples: int, naive_rows: int) -> dict:
    """Seconds per frame of both samplers on the same conditioning and uniforms."""
    c = model.config
    g = torch.Generator().manual_seed(0)
    s = c.image_size
    with torch.no_grad():
        h = torch.randn(samples, c.lstm_channels, s, s, generator=g)
        v = torch.randn(samples, c.cond_dim, generator=g)
        conds = model._decoder_conds(h, v)
    u = torch.rand(samples, s, s, 3, generator=g)
    values = model.bin_input(torch.arange(c.levels))
    start = time.perf_counter()
    fast = sample_fast(model.decoder, conds, u, values)
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = sample_naive(model.decoder, conds, u, values, rows=naive_rows)
    naive_s = (time.perf_counter() - start) * s / naive_rows
    rows = slice(0, naive_rows)
    same = float((fast[:, :, rows] == naive[:, :, rows]).float().mean())
    return {"fast": fast_s, "naive": naive_s, "same": same}


def time_rollout(model: VideoPixelNetwork, samples: int, frames: int) -> float:
    """Seconds of a fast rollout of ``frames`` frames, ``samples`` futures of one context."""
    c = model.config
    g = torch.Generator().manual_seed(0)
    context = torch.rand(1, c.context_frames, 3, c.image_size, c.image_size, generator=g)
    states = torch.rand(1, c.context_frames, c.state_dim, generator=g) * 0.5 - 0.25
    actions = torch.rand(1, c.context_frames - 1 + frames, c.action_dim, generator=g) * 2 - 1
    start = time.perf_counter()
    model.rollout(context, states, actions, samples, generator=torch.Generator().manual_seed(1))
    return time.perf_counter() - start


def time_cem_step(model: VideoPixelNetwork, steps: int) -> tuple[float, str]:
    """Mean seconds of a CEM planning step with the model's budget, and that budget."""
    planner, used = apply_budget(load_planner("cem"), model.config.plan)
    suite = load_suite("easy")
    env = PushEnv(image_size=model.config.image_size)
    task = sample_tasks(EnvSpec.of(env), suite.tasks, suite.seed, 1)[0]
    predictor = ModelPredictor(model, planner.num_samples, planner.batch_size)
    policy = MPCPolicy(predictor, planner)
    run_episode(env, policy, task, steps, np.random.default_rng(0))
    env.close()
    budget = (
        f"{used.samples} samples x {used.iterations} iteration(s), batch {used.batch_size}, "
        f"{used.num_samples} future(s), horizon {planner.horizon}"
    )
    return float(np.mean(policy.plan_seconds)), budget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="trained checkpoint to time")
    parser.add_argument("--config", default="vpn", help="model preset when no --model")
    parser.add_argument("--samples", type=int, default=64, help="futures sampled at once")
    parser.add_argument("--naive-rows", type=int, default=1, help="rows the naive sampler runs")
    parser.add_argument("--frames", type=int, default=2, help="frames of the timed rollout")
    parser.add_argument("--plan-steps", type=int, default=2, help="CEM steps timed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = load_model(args.model) if args.model else build_model(load_model_config(args.config))
    if not isinstance(model, VideoPixelNetwork) or not model.config.autoregressive:
        raise SystemExit("this benchmark times the autoregressive VPN (e.g. --config vpn)")
    model.eval()
    c, n = model.config, args.samples

    frame = time_frame(model, n, args.naive_rows)
    rollout_s = time_rollout(model, n, args.frames)
    cem_s, budget = time_cem_step(model, args.plan_steps)

    table = Table(
        title=f"VPN sampling: {c.image_size}x{c.image_size}x3, {c.levels} levels, "
        f"{c.decoder_blocks} decoder {c.block} blocks (c = {c.channels}), {n} samples, "
        f"{torch.get_num_threads()} thread(s)"
    )
    for col in ("sampler", "timed", "s / frame (all samples)", "frames / s"):
        table.add_column(col, justify="left" if col == "sampler" else "right")
    table.add_row(
        "naive: 3HW decoder passes",
        f"{args.naive_rows} of {c.image_size} rows, extrapolated",
        f"{frame['naive']:.2f}",
        f"{n / frame['naive']:.3f}",
    )
    table.add_row(
        "fast: cached activations", "1 frame", f"{frame['fast']:.2f}", f"{n / frame['fast']:.2f}"
    )
    table.add_row(
        "fast rollout (+ encoder, LSTM)",
        f"{args.frames} frames",
        f"{rollout_s / args.frames:.2f}",
        f"{n * args.frames / rollout_s:.2f}",
    )
    console = Console()
    console.print(table)
    console.print(f"sub-pixels where fast and naive samples agree: {frame['same']:.2%}")
    console.print(f"CEM step with the model's plan budget ({budget}): {cem_s:.2f} s")
    print(f"speed-up: {frame['naive'] / frame['fast']:.1f}x")


if __name__ == "__main__":
    main()
