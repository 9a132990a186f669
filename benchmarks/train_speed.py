"""Training throughput: sequences/s of one optimisation step (forward + backward + Adam).

Each model preset is built from its YAML and timed with the trainer's own ``TrainStep``
(autocast and loss scaling on CUDA, gradient clipping, Adam) on a synthetic batch of the
preset's shapes (``batch_size`` windows of ``context_frames + future_frames`` frames at
``image_size``), so data loading is excluded. Warm-up iterations are not timed. On CPU the batch
is capped at 16 (paper presets use 100, which only makes a CPU run long: sequences/s barely
depend on the batch there); ``--batch-size`` sets it explicitly.

Also printed: the FLOPs of one step (forward and backward, ``torch.utils.flop_counter``; the
convolutions and matmuls that dominate), the FLOP/s achieved and their share of the machine's
measured float32 matmul peak; and the estimated peak memory of a training process at the
preset's own batch (``foresight.training.memory``: weights, gradients, optimizer state and
saved activations as bf16 autocast saves them), which needs no GPU. ``--memory-only`` prints
just that.

Usage:
    python benchmarks/train_speed.py                      # every configs/model/*.yaml
    python benchmarks/train_speed.py --presets svg_lp svg_lp_paper --iters 10
    python benchmarks/train_speed.py --device cuda
    python benchmarks/train_speed.py --memory-only --presets vpn_paper --processes 8
"""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table

from foresight.batch import ACTIONS, FRAMES, STATES
from foresight.config import repo_root
from foresight.device import resolve_device
from foresight.models import build_model, load_model_config
from foresight.models.base import ModelConfig
from foresight.training import DistContext, TrainStep, pick_precision, with_overrides
from foresight.training.flops import counted_flops, matmul_peak
from foresight.training.memory import estimate_training_memory


def synthetic_batch(config: ModelConfig, batch_size: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    b, t, s = batch_size, config.window, config.image_size
    batch = {
        FRAMES: torch.rand(b, t, 3, s, s, generator=g),
        STATES: torch.rand(b, t, config.state_dim, generator=g) * 0.4 - 0.2,
        ACTIONS: torch.rand(b, t - 1, config.action_dim, generator=g) * 2 - 1,
    }
    return {k: v.to(device) for k, v in batch.items()}


def memory_row(config: ModelConfig, processes: int) -> dict[str, str]:
    estimate = estimate_training_memory(config, processes)
    return {
        "est. GB": f"{estimate.total / 1e9:.1f}",
        "est. batch": str(estimate.batch),
    }


def time_preset(
    name: str,
    device: torch.device,
    iters: int,
    warmup: int,
    batch_size: int | None,
    peak: float | None = None,
    processes: int = 1,
):
    config = with_overrides(load_model_config(name), seed=0)
    torch.manual_seed(0)
    row = {
        "preset": name,
        "model": config.model,
        "size": f"{config.image_size}x{config.image_size}",
        "window": f"{config.context_frames}+{config.future_frames}",
        **memory_row(config, processes),
    }
    if peak is None:  # --memory-only
        return row
    model = build_model(config).to(device)
    row["params"] = f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M"
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
    flops = counted_flops(lambda: step(batch, after_warmup))  # untimed: counting slows ops
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
        "GFLOP/step": f"{flops / 1e9:.1f}",
        "GFLOP/s": f"{flops / seconds / 1e9:.1f}",
        "% peak": f"{100 * flops / seconds / peak:.0f}",
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
    parser.add_argument(
        "--memory-only", action="store_true", help="only the estimated peak memory (no timing)"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="GPUs the preset's batch is split over"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    console = Console()
    peak = None if args.memory_only else matmul_peak(device)
    columns = ["preset", "model", "size", "window", "est. batch", "est. GB"]
    if peak is None:
        title = f"estimated peak training memory per process ({args.processes} process(es))"
    else:
        columns[4:4] = ["params", "batch", "amp", "ms", "seq/s", "GFLOP/step", "GFLOP/s"]
        columns.insert(11, "% peak")
        title = (
            f"training throughput on {device} ({torch.get_num_threads()} CPU threads, "
            f"matmul peak {peak / 1e9:.0f} GFLOP/s), {args.iters} timed steps after "
            f"{args.warmup} warm-up"
        )
    table = Table(title=title)
    for col in columns:
        right = col not in ("preset", "model", "size", "window", "amp")
        table.add_column(col, justify="right" if right else "left", no_wrap=True)
    for name in args.presets:
        start = time.perf_counter()
        row = time_preset(
            name, device, args.iters, args.warmup, args.batch_size, peak, args.processes
        )
        console.print(f"timed {name} in {time.perf_counter() - start:.0f} s", style="dim")
        table.add_row(*(row.get(c, "-") for c in columns))
    console.print(table)
    console.print(
        "untrainable presets (copy_last) show '-'; 'ms' is one full optimisation step; "
        "'est. GB' is at the preset's batch per process (est. batch), activations under bf16 "
        "autocast, transients not counted; GFLOP/step counts recomputed (checkpointed) blocks"
    )


if __name__ == "__main__":
    main()
