"""Collection speed: env steps/s (step + render) against the bare MuJoCo limit.

Prints a table with:
  * bare limit: mj_step x frame_skip + render of the same scene, no env code around it;
  * env, 1 worker: PushEnv.step with random actions (observation dict, info, render);
  * env, K workers: K processes stepping their own env, total steps/s;
  * collect, 1 and K workers: `foresight collect` end to end (policy, saving, HDF5 assembly).

Targets (issue 2): env 1 worker >= 70% of the bare limit; 2 workers >= 1.6x one worker.

Usage: python benchmarks/collect_speed.py [--image-size 64] [--seconds 5] [--workers 2]
       [--env push_random]   # an env preset: randomised scenes rebuild the scene per episode
       [--backend ray]       # the end-to-end rows on Ray actors (benchmarks/backend_speed.py
                             # compares the backends side by side)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import foresight.envs  # noqa: F401  (selects MUJOCO_GL before mujoco is imported)


def bare_limit(image_size: int, seconds: float) -> float:
    import mujoco

    from foresight.envs import PushConfig, PushSim

    sim = PushSim(PushConfig(image_size=image_size))
    sim.set_layout(
        np.zeros(2), np.array([[0.1, 0.0], [-0.1, 0.1], [0.0, -0.1]]), np.zeros(3), np.ones(3, bool)
    )
    renderer = mujoco.Renderer(sim.model, image_size, image_size)
    rng = np.random.default_rng(0)
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        sim.data.ctrl[:] = rng.uniform(-0.3, 0.3, size=2)
        mujoco.mj_step(sim.model, sim.data, sim.config.frame_skip)
        renderer.update_scene(sim.data, camera="top")
        renderer.render()
        n += 1
    elapsed = time.perf_counter() - start
    renderer.close()
    return n / elapsed


def env_steps(args: tuple[int, float, int, str]) -> tuple[int, float]:
    image_size, seconds, seed, env_name = args
    from foresight.envs import load_env

    env = load_env(env_name).with_image_size(image_size).make()
    env.reset(seed=seed)
    env.action_space.seed(seed)
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.step(env.action_space.sample())
        n += 1
        if n % 30 == 0:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return n, elapsed


def env_parallel(image_size: int, seconds: float, workers: int, env: str) -> float:
    with mp.get_context("spawn").Pool(workers) as pool:
        # Warm the workers (imports, GL context) before timing.
        pool.map(env_steps, [(image_size, 0.2, i, env) for i in range(workers)])
        results = pool.map(env_steps, [(image_size, seconds, i, env) for i in range(workers)])
    return sum(n / t for n, t in results)


def collect_end_to_end(
    image_size: int, episodes: int, workers: int, env: str, backend: str = "local"
) -> float:
    from foresight.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.h5"
        start = time.perf_counter()
        main(
            [
                "collect",
                "--out",
                str(out),
                "--episodes",
                str(episodes),
                "--steps",
                "30",
                "--image-size",
                str(image_size),
                "--workers",
                str(workers),
                "--env",
                env,
                "--backend",
                backend,
            ]
        )
        elapsed = time.perf_counter() - start
    return episodes * 30 / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=200, help="for the end-to-end rows")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--env", default="push", help="env preset of the env and collect rows")
    parser.add_argument("--backend", default="local", help="backend of the collect rows")
    args = parser.parse_args()

    # Interleave the single-process measurements and keep the best of each, so that a burst
    # of load from other processes on the machine skews neither side of the ratio.
    bare, one = 0.0, 0.0
    for _ in range(args.repeats):
        bare = max(bare, bare_limit(args.image_size, args.seconds))
        n, t = env_steps((args.image_size, args.seconds, 0, args.env))
        one = max(one, n / t)
    many = env_parallel(args.image_size, args.seconds, args.workers, args.env)
    col1 = collect_end_to_end(args.image_size, args.episodes, 1, args.env, args.backend)
    colk = collect_end_to_end(args.image_size, args.episodes, args.workers, args.env, args.backend)

    size = args.image_size
    table = Table(title=f"collection speed, env preset {args.env}, {size}x{size} frames")
    table.add_column("what")
    table.add_column("backend")
    table.add_column("steps/s", justify="right")
    table.add_column("vs bare", justify="right")
    table.add_column("vs 1 worker", justify="right")
    table.caption = f"best of {args.repeats} interleaved runs of {args.seconds:g} s; targets: "
    "env 1 worker >= 70% of bare, 2 workers >= 1.6x 1 worker"
    b = args.backend
    table.add_row("bare MuJoCo limit (mj_step + render)", "", f"{bare:,.0f}", "100%", "")
    table.add_row("env, 1 worker", "local", f"{one:,.0f}", f"{one / bare:.0%}", "1.00x")
    table.add_row(
        f"env, {args.workers} workers",
        "local",
        f"{many:,.0f}",
        f"{many / bare:.0%}",
        f"{many / one:.2f}x",
    )
    table.add_row("collect end to end, 1 worker", b, f"{col1:,.0f}", f"{col1 / bare:.0%}", "")
    table.add_row(
        f"collect end to end, {args.workers} workers",
        b,
        f"{colk:,.0f}",
        f"{colk / bare:.0%}",
        f"{colk / col1:.2f}x",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
