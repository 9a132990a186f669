"""GPU smoke run: every CUDA path foresight has, one line per check, ``N passed, N failed`` last.

On a machine with a GPU (about 8 minutes on one, no network: the data is collected here):

* each family's ``paper`` preset takes a bf16 and an fp16 training step at its real batch,
  with the peak memory;
* ``foresight train`` and ``--resume`` with DataLoader workers;
* the GAN's two optimizers with two loss scalers (fp16);
* the NCCL path: ``torchrun`` with one process, which goes through the process group;
* ``foresight plan`` with the trained tiny model;
* the VPN's fast sampler: seconds per frame at 8, 32 and 128 samples, and its agreement with
  the naive sampler.

Without a GPU it falls back by itself to what runs on a CPU: the paper presets' estimated
peak memory (:mod:`foresight.training.memory`) and a bf16/fp16 autocast step of each family's
``cpu`` preset, and the rest on CPU with gloo. Exit status 1 if any check failed.

    bash benchmarks/gpu_smoke.sh            # or: python benchmarks/gpu_smoke.py [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from foresight.batch import ACTIONS, FRAMES, STATES, frames_as
from foresight.config import to_dict
from foresight.models import build_model, config_from_dict, load_model_config
from foresight.models.base import VideoModel
from foresight.training import DistContext, Precision, TrainStep

#: Each family's paper preset and the ``cpu`` preset that stands for it without a GPU.
FAMILIES = {
    "svg_lp_paper": "svg_lp",
    "svg_fp_paper": "svg_fp",
    "svg_det_paper": "svg_det",
    "vrnn_paper": "vrnn",
    "hvrnn_paper": "hvrnn",
    "gan_paper": "gan",
    "vpn_paper": "vpn",
}

#: Overrides that make the quickstart's model a seconds-long tiny run.
TINY_TRAIN = [
    "channels=2", "g_dim=8", "rnn_size=8", "image_size=16", "future_frames=3",
    "eval_future_frames=4", "train.batch_size=4", "train.warmup_steps=1", "train.log_every=2",
    "train.eval_every=2", "train.eval_batches=1", "train.eval_samples=1",
]  # fmt: skip


class Checks:
    """Runs checks, prints one line each, counts passes and failures."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def run(self, name: str, check: Callable[[], str]) -> None:
        start = time.perf_counter()
        try:
            detail = check()
        except Exception as err:  # a smoke run reports every failure and goes on
            self.failed += 1
            last = traceback.format_exception_only(type(err), err)[-1].strip()
            print(f"FAIL {name} ({time.perf_counter() - start:.1f} s): {last[:300]}", flush=True)
            return
        self.passed += 1
        print(f"PASS {name} ({time.perf_counter() - start:.1f} s): {detail}", flush=True)


def synthetic_batch(model: VideoModel, batch: int, device: torch.device) -> dict:
    c = model.config
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(batch, c.window, 3, c.image_size, c.image_size, generator=g)
    out = {
        FRAMES: frames_as(frames, type(model).frame_dtype),
        STATES: torch.rand(batch, c.window, c.state_dim, generator=g) * 0.4 - 0.2,
        ACTIONS: torch.rand(batch, c.window - 1, c.action_dim, generator=g) * 2 - 1,
    }
    return {k: v.to(device) for k, v in out.items()}


def train_step(name: str, device: torch.device, dtype: torch.dtype, batch: int | None) -> str:
    """One optimisation step of preset ``name`` under autocast ``dtype``; its peak memory."""
    torch.manual_seed(0)
    model = build_model(load_model_config(name)).to(device)
    size = batch or model.config.train.batch_size
    step = TrainStep(model, Precision(device.type, dtype), DistContext(device=device))
    data = synthetic_batch(model, size, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = step(data, 10**9)
    scalers = [s.is_enabled() for s in step.opt.scalers.values()]
    if any(scalers) != (dtype == torch.float16):
        raise RuntimeError(f"loss scalers enabled {scalers} under {dtype}")
    skipped = [
        name
        for name, norm in result.grad_norm.items()
        if not _finite(norm)
        # fp16: overflowing gradients at the first scale are the scaler's to skip (it halves
        # the scale and the optimizer does not step), not a failure.
        and not (dtype == torch.float16 and _lowered(step, name))
    ]
    if not _finite(result.loss) or skipped:
        raise RuntimeError(f"non-finite loss or gradient: {result.loss}, {result.grad_norm}")
    peak = ""
    if device.type == "cuda":
        peak = f", peak {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"
    return f"batch {size}, loss {result.loss:.4f}, {len(scalers)} scaler(s){peak}"


def _lowered(step: TrainStep, key: str) -> bool:
    """Whether the loss scaler behind grad-norm ``key`` lowered its scale (skipped a step)."""
    name = key.removeprefix("grad_norm_") if key != "grad_norm" else "model"
    return step.opt.scalers[name].get_scale() < 65536.0


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def memory_estimate(name: str) -> str:
    from foresight.training.memory import estimate_training_memory

    config = load_model_config(name)
    estimate = estimate_training_memory(config)
    gib = estimate.total / 2**30
    if gib > 80:
        fits = next(
            (n for n in (2, 4, 8, 16, 32, 64)
             if estimate_training_memory(config, n).total <= 80 * 2**30),
            None,
        )  # fmt: skip
        split = f"; it fits split over {fits} GPUs" if fits else ""
        raise RuntimeError(
            f"estimated {gib:.1f} GiB at batch {config.train.batch_size} on one GPU > 80{split}"
        )
    return f"estimated peak {gib:.1f} GiB at batch {config.train.batch_size} ({estimate})"


def cli(*args: str, env: dict[str, str] | None = None, torchrun: bool = False) -> str:
    """Run ``foresight ARGS`` (under a one-process torchrun if asked); its stderr."""
    cmd = [sys.executable, "-m", "foresight.cli", *args]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "1", *cmd[1:]]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise RuntimeError(f"exit {done.returncode}: {' | '.join(lines[-3:])[:300]}")
    return done.stderr


def vpn_sampler(device: torch.device) -> str:
    from foresight.models.vpn_sampling import sample_fast, sample_naive

    torch.manual_seed(0)
    model = build_model(load_model_config("vpn")).to(device).eval()
    c = model.config
    s = c.image_size
    values = model.bin_input(torch.arange(c.levels, device=device))
    times = []
    for samples in (8, 32, 128):
        g = torch.Generator().manual_seed(samples)
        h = torch.randn(samples, c.lstm_channels, s, s, generator=g).to(device)
        v = torch.randn(samples, c.cond_dim, generator=g).to(device)
        u = torch.rand(samples, s, s, 3, generator=g).to(device)
        with torch.no_grad():
            conds = model._decoder_conds(h, v)
            start = time.perf_counter()
            fast = sample_fast(model.decoder, conds, u, values)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(f"{samples}: {time.perf_counter() - start:.2f} s/frame")
            if samples == 8:
                naive = sample_naive(model.decoder, conds, u, values, rows=1)
                same = float((fast[:, :, :1] == naive[:, :, :1]).float().mean())
                if same < 1.0:
                    raise RuntimeError(f"fast and naive samplers agree on {same:.1%} of row 0")
    return ", ".join(times) + "; fast == naive on row 0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    cuda = torch.cuda.is_available() if args.device == "auto" else args.device == "cuda"
    device = torch.device("cuda" if cuda else "cpu")
    what = torch.cuda.get_device_name(device) if cuda else "no GPU: CPU fallback mode"
    print(f"foresight GPU smoke run on {device} ({what}), torch {torch.__version__}", flush=True)
    checks = Checks()
    for paper, small in FAMILIES.items():
        if cuda:
            for dtype in (torch.bfloat16, torch.float16):
                label = f"{paper} {str(dtype).removeprefix('torch.')} step"
                checks.run(label, lambda p=paper, d=dtype: train_step(p, device, d, None))
        else:
            checks.run(f"{paper} memory", lambda p=paper: memory_estimate(p))
            for dtype in (torch.bfloat16, torch.float16):
                label = f"{small} {str(dtype).removeprefix('torch.')} autocast step (CPU)"
                checks.run(label, lambda s=small, d=dtype: train_step(s, device, d, 2))
    with tempfile.TemporaryDirectory(prefix="foresight_smoke_") as tmp:
        root = Path(tmp)
        data, run = root / "data.h5", root / "run"
        dev = ["--device", device.type]

        def collect() -> str:
            cli("collect", "--out", str(data), "--episodes", "12", "--steps", "12",
                "--image-size", "32", "--seed", "0")  # fmt: skip
            return "12 episodes of 12 steps, 32x32"

        checks.run("collect", collect)
        train = ["train", "--config", "vrnn_fast", "--data", str(data), *dev, "--no-progress"]

        def train_and_resume() -> str:
            cli(*train, "--out", str(run), "--max-steps", "2", *TINY_TRAIN, "train.num_workers=2")
            cli(*train, "--out", str(run), "--max-steps", "4", "--resume", *TINY_TRAIN,
                "train.num_workers=2")  # fmt: skip
            return "2 steps, then --resume to 4, with 2 DataLoader workers"

        checks.run("train + resume", train_and_resume)

        def gan_scalers() -> str:
            preset = to_dict(load_model_config("gan"))
            tiny = {"image_size": 16, "g_widths": [[4], [4]], "g_kernels": [[3, 3], [3, 3]],
                    "d_widths": [[4], [4]], "d_kernels": [[3], [3]], "d_fc": [[8], [8]],
                    "crop_size": None}  # fmt: skip
            model = build_model(config_from_dict({**preset, **tiny})).to(device)
            step = TrainStep(
                model, Precision(device.type, torch.float16), DistContext(device=device)
            )
            result = step(synthetic_batch(model, 2, device), 10**9)
            names = sorted(n for n, s in step.opt.scalers.items() if s.is_enabled())
            if len(names) != 2 or not _finite(result.loss):
                raise RuntimeError(f"scalers enabled: {names}, loss {result.loss}")
            return f"fp16, scalers {names} enabled, loss {result.loss:.4f}"

        checks.run("gan two loss scalers", gan_scalers)

        def one_process_group() -> str:
            out = cli(*train, "--out", str(root / "ddp"), "--max-steps", "2", *TINY_TRAIN,
                      torchrun=True)  # fmt: skip
            backend = "nccl" if cuda else "gloo"
            if f"x 1 process(es) ({backend})" not in out:
                raise RuntimeError(f"the run did not join a {backend} process group")
            return f"torchrun, 1 process, {backend}"

        checks.run("torchrun process group", one_process_group)

        def plan() -> str:
            cli("plan", "--model", str(run / "checkpoint.pt"), "--suite", "easy",
                "--episodes", "1", "--out", str(root / "plan"), "--planner", "fast", *dev,
                "--no-gifs", "optimizer.samples=16", "optimizer.iterations=1")  # fmt: skip
            return "1 easy episode with the tiny model"

        checks.run("plan", plan)
    checks.run("vpn fast sampler", lambda: vpn_sampler(device))
    print(f"{checks.passed} passed, {checks.failed} failed", flush=True)
    sys.exit(1 if checks.failed else 0)


if __name__ == "__main__":
    main()
