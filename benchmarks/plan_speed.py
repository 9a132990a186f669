"""Seconds per planning step of visual-foresight MPC, and the share spent outside the model.

Times MPC planning steps (CEM by default: 200 samples x 3 iterations, horizon 10, the object
cost on the last frame) on the first task of a suite (``easy`` by default; ``--suite pusht``
times Push-T), for

* the simulator oracle (true dynamics, rendering the frames the cost reads),
* a video model: a trained checkpoint (``--model PATH``), else an untrained ``cpu``-preset
  model built from ``--config`` (``svg_lp`` by default; timing needs no training), and
  ``copy_last`` (the cheapest possible model, so nearly all its time is overhead).

"Outside the model" is planner + cost + bookkeeping: a planning step's wall time minus the
time inside the predictor. Aim: under 10% for real models.

Also printed: the FLOPs of one planning step (the models' matrix products and convolutions,
``torch.utils.flop_counter``, counted in one extra untimed step), the FLOP/s of a timed step
and their share of the measured float32 matmul peak at the same thread count.

    python benchmarks/plan_speed.py [--model run/checkpoint.pt] [--steps 4] [--planner cem]
        [--suite easy|pusht|...]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from foresight.device import resolve_device
from foresight.envs import SuiteConfig, load_suite, sample_tasks
from foresight.models import build_model, load_model, load_model_config
from foresight.models.checkpoint import resolve_checkpoint
from foresight.planners import ModelPredictor, MPCPolicy, OraclePredictor, load_planner
from foresight.planners.config import apply_budget
from foresight.planners.mpc import Policy, run_episode
from foresight.training.flops import counted_flops, matmul_peak


def time_policy(
    name: str, policy: Policy, env_size: int | None, steps: int, suite: SuiteConfig
) -> dict:
    spec = suite.env_spec().with_image_size(env_size)
    env = spec.make()
    task = sample_tasks(spec, suite.tasks, suite.seed, 1)[0]
    # A one-step episode first, counted and untimed (counting slows every operation).
    flops = counted_flops(lambda: run_episode(env, policy, task, 1, np.random.default_rng(0)))
    start = time.perf_counter()
    # A planning call every step, whatever the suite's replanning interval.
    run_episode(env, policy, task, steps, np.random.default_rng(0))
    wall = time.perf_counter() - start
    env.close()
    per_step = float(np.mean(policy.plan_seconds))
    model = policy.model_seconds / len(policy.plan_seconds)
    return {
        "name": name,
        "size": spec.image_size,
        "s/step": per_step,
        "model s/step": model,
        "outside": max(0.0, 1.0 - model / per_step),
        "wall": wall,
        "flops": flops,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default=None, help="trained checkpoint (or run directory: its best.pt) to time"
    )
    parser.add_argument("--config", default="svg_lp", help="model preset when no --model")
    parser.add_argument("--planner", default="cem", help="planner preset or YAML")
    parser.add_argument("--steps", type=int, default=4, help="planning steps per row")
    parser.add_argument("--suite", default="easy", help="suite whose first task (and env) is timed")
    parser.add_argument("--device", default="auto")
    # 1 thread, as `foresight plan` uses per worker on CPU: on a shared machine more OpenMP
    # threads than free cores made small ops up to 50x slower (measured).
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device))
    peak = matmul_peak(torch.device(device))
    # Every timed call plans the whole horizon: the few steps timed here are not an episode's
    # end, where a planner with to_episode_end would imagine less.
    planner = replace(load_planner(args.planner), to_episode_end=False)
    torch.manual_seed(0)

    rows = []
    suite = load_suite(args.suite)
    rows.append(
        {
            **time_policy(
                "oracle",
                MPCPolicy(OraclePredictor(suite.env_spec()), planner),
                None,
                args.steps,
                suite,
            ),
            "budget": apply_budget(planner, None)[1].label(),
        }
    )
    if args.model:
        # The run folder names the model (``runs/vrnn_fast/checkpoint.pt`` -> ``vrnn_fast``);
        # the full path would be cut off in the table.
        checkpoint = resolve_checkpoint(args.model)
        models = [(checkpoint.parent.name or checkpoint.stem, load_model(checkpoint, device))]
    else:
        cfg = load_model_config(args.config)
        models = [(f"{args.config} (untrained)", build_model(cfg).to(device).eval())]
    copy_cfg = replace(load_model_config("copy_last"), image_size=models[0][1].config.image_size)
    models.append(("copy_last", build_model(copy_cfg).to(device).eval()))
    for name, model in models:
        # The budget `foresight plan` would use: the model's plan: block over the preset.
        run_planner, budget = apply_budget(planner, model.config.plan)
        predictor = ModelPredictor(model, run_planner.num_samples, run_planner.batch_size, device)
        policy = MPCPolicy(predictor, run_planner, device=device)
        row = time_policy(name, policy, model.config.image_size, args.steps, suite)
        rows.append({**row, "budget": budget.label()})

    opt = planner.optimizer
    table = Table(
        title=f"planning step: {opt.name} {opt.samples}x{opt.iterations}, horizon "
        f"{planner.horizon}, cost {planner.cost.name}/{planner.cost.frames}, suite {args.suite}, "
        f"device {device}, {torch.get_num_threads()} threads, matmul peak {peak / 1e9:.0f} GFLOP/s"
    )
    columns = ("predictor", "frames", "budget", "s / step", "model s / step", "outside the model")
    for col in (*columns, "GFLOP/step", "GFLOP/s", "% peak"):
        table.add_column(col, justify="left" if col == "predictor" else "right")
    for r in rows:
        table.add_row(
            r["name"],
            f"{r['size']}x{r['size']}",
            r["budget"],
            f"{r['s/step']:.3f}",
            f"{r['model s/step']:.3f}",
            f"{r['outside']:.1%}",
            f"{r['flops'] / 1e9:.2f}",
            f"{r['flops'] / r['s/step'] / 1e9:.1f}",
            f"{100 * r['flops'] / r['s/step'] / peak:.1f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
