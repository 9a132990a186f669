"""Training throughput: sequences/s of one optimisation step (forward + backward + Adam).

Each model preset is built from its YAML and timed with the trainer's own ``TrainStep``
(autocast and loss scaling on CUDA, gradient clipping, Adam) on a synthetic batch of the
preset's shapes (``batch_size`` windows of ``context_frames + future_frames`` frames at
``image_size``), so data loading is excluded. Warm-up iterations are not timed. On CPU the batch
is capped at 16 (paper presets use 100, which only makes a CPU run long: sequences/s barely
depend on the batch there); ``--batch-size`` sets it explicitly.

Usage:
    python benchmarks/train_speed.py                      # every configs/model/*.yaml
    python benchmarks/train_speed.py --presets svg_lp svg_lp_paper --iters 10
    python benchmarks/train_speed.py --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table

from foresight.batch import ACTIONS, FRAMES, STATES
from foresight.config import repo_root
from foresight.models import build_model, load_model_config
from foresight.models.base import ModelConfig
from foresight.training import DistContext, TrainStep, pick_device, pick_precision, with_overrides


def synthetic_batch(config: ModelConfig, batch_size: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    b, t, s = batch_size, config.window, config.image_size
    batch = {
        FRAMES: torch.rand(b, t, 3, s, s, generator=g),
        STATES: torch.rand(b, t, config.state_dim, generator=g) * 0.4 - 0.2,
        ACTIONS: torch.rand(b, t - 1, config.action_dim, generator=g) * 2 - 1,
    }
    return {k: v.to(device) for k, v in batch.items()}


def time_preset(name: str, device: torch.device, iters: int, warmup: int, batch_size: int | None):
    config = with_overrides(load_model_config(name), seed=0)
    torch.manual_seed(0)
    model = build_model(config).to(device)
    row = {
        "preset": name,
        "model": config.model,
        "size": f"{config.image_size}x{config.image_size}",
        "window": f"{config.context_frames}+{config.future_frames}",
        "params": f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M",
    }
    if not type(model).trainable:
        return {**row, "batch": "-", "amp": "-", "ms": "-", "seq/s": "-"}
    b = batch_size or (
        config.train.batch_size if device.type == "cuda" else min(config.train.batch_size, 16)
    )
    precision = pick_precision(config.train.amp, device)
    step = TrainStep(model, precision, DistContext(device=device))
    batch = synthetic_batch(config, b, device)
    after_warmup = 10**9  # every learning rate at its peak
    for _ in range(warmup):
        step(batch, after_warmup)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        step(batch, after_warmup)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / iters
    return {
        **row,
        "batch": str(b),
        "amp": precision.name,
        "ms": f"{seconds * 1e3:.0f}",
        "seq/s": f"{b / seconds:.1f}",
    }


def main() -> None:
    presets = sorted(p.stem for p in (repo_root() / "configs" / "model").glob("*.yaml"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=presets, help="names or YAML paths")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--iters", type=int, default=3, help="timed steps per preset")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: the preset's (<= 16 on CPU)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    console = Console()
    table = Table(
        title=f"training throughput on {device} ({torch.get_num_threads()} CPU threads), "
        f"{args.iters} timed steps after {args.warmup} warm-up"
    )
    columns = ["preset", "model", "size", "window", "params", "batch", "amp", "ms", "seq/s"]
    for col in columns:
        right = col in ("ms", "seq/s", "params", "batch")
        table.add_column(col, justify="right" if right else "left", no_wrap=True)
    for name in args.presets:
        start = time.perf_counter()
        row = time_preset(name, device, args.iters, args.warmup, args.batch_size)
        console.print(f"timed {name} in {time.perf_counter() - start:.0f} s", style="dim")
        table.add_row(*(row[c] for c in columns))
    console.print(table)
    console.print("untrainable presets (copy_last) show '-'; 'ms' is one full optimisation step")


if __name__ == "__main__":
    main()
