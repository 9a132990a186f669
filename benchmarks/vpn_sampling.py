"""Sampling speed of the Video Pixel Network: naive vs fast, and one CEM step with its budget.

A VPN samples each frame sub-pixel by sub-pixel (3 x 32 x 32 = 3072 sequential draws at the
``cpu`` preset). The naive sampler reruns the whole decoder for every draw; the fast one
evaluates the decoder at the new sub-pixel's position only, from cached activations. Both draw
the same uniforms, so they give the same samples (checked here on the timed frame).

Times, for ``--samples`` futures of one context (batched, as a planner batches candidates):

* fast and naive sampling of ``--frames`` / ``--naive-frames`` frames (frames/s counts every
  sample's frame);
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

from foresight.envs import PushEnv, load_suite, sample_tasks
from foresight.models import build_model, load_model, load_model_config
from foresight.models.vpn import VideoPixelNetwork
from foresight.planners import ModelPredictor, MPCPolicy, load_planner
from foresight.planners.config import apply_budget
from foresight.planners.mpc import run_episode


def time_sampler(
    model: VideoPixelNetwork, samples: int, frames: int, sampler: str
) -> tuple[float, torch.Tensor]:
    """Seconds to sample ``frames`` future frames of ``samples`` futures, and the samples."""
    s = model.config.image_size
    g = torch.Generator().manual_seed(0)
    context = torch.rand(1, model.config.context_frames, 3, s, s, generator=g)
    states = torch.rand(1, model.config.context_frames, model.config.state_dim, generator=g)
    actions = torch.rand(1, model.config.context_frames - 1 + frames, 2, generator=g) * 2 - 1
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(1)
    out = model.rollout(context, states, actions, samples, generator=gen, sampler=sampler)
    return time.perf_counter() - start, out


def time_cem_step(model: VideoPixelNetwork, steps: int) -> tuple[float, str]:
    """Mean seconds of a CEM planning step with the model's budget, and that budget."""
    planner, used = apply_budget(load_planner("cem"), model.config.plan)
    suite = load_suite("easy")
    env = PushEnv(image_size=model.config.image_size)
    task = sample_tasks(env.config, suite.tasks, suite.seed, 1)[0]
    predictor = ModelPredictor(model, planner.num_samples, planner.batch_size)
    policy = MPCPolicy(predictor, planner)
    run_episode(env, policy, task, steps, np.random.default_rng(0))
    env.close()
    budget = (
        f"{used.samples} samples x {used.iterations} iterations, batch {used.batch_size}, "
        f"{used.num_samples} future(s), horizon {planner.horizon}"
    )
    return float(np.mean(policy.plan_seconds)), budget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="trained checkpoint to time")
    parser.add_argument("--config", default="vpn", help="model preset when no --model")
    parser.add_argument("--samples", type=int, default=64, help="futures sampled at once")
    parser.add_argument("--frames", type=int, default=2, help="frames timed with fast sampling")
    parser.add_argument("--naive-frames", type=int, default=1, help="frames timed naively")
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
    c = model.config

    fast_s, fast = time_sampler(model, args.samples, args.frames, "fast")
    naive_s, naive = time_sampler(model, args.samples, args.naive_frames, "naive")
    common = min(args.frames, args.naive_frames)
    same = torch.equal(fast[:, :, :common], naive[:, :, :common])
    fast_fps = args.samples * args.frames / fast_s
    naive_fps = args.samples * args.naive_frames / naive_s
    cem_s, budget = time_cem_step(model, args.plan_steps)

    table = Table(
        title=f"VPN sampling: {c.image_size}x{c.image_size}x3, {c.levels} levels, "
        f"{c.decoder_blocks} decoder {c.block} blocks (c = {c.channels}), {args.samples} samples, "
        f"{torch.get_num_threads()} thread(s)"
    )
    for col in ("sampler", "frames timed", "seconds", "s / frame step", "frames / s"):
        table.add_column(col, justify="left" if col == "sampler" else "right")
    for name, frames, secs, fps in (
        ("naive (3HW decoder passes)", args.naive_frames, naive_s, naive_fps),
        ("fast (cached activations)", args.frames, fast_s, fast_fps),
    ):
        table.add_row(name, str(frames), f"{secs:.2f}", f"{secs / frames:.2f}", f"{fps:.2f}")
    console = Console()
    console.print(table)
    console.print(f"fast and naive samples identical (first {common} frame(s)): {same}")
    console.print(f"CEM step with the model's plan budget ({budget}): {cem_s:.2f} s")
    print(f"speed-up: {fast_fps / naive_fps:.1f}x")


if __name__ == "__main__":
    main()
