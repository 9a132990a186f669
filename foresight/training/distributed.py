"""Device choice and torchrun/DDP process groups: one process per device, rank 0 writes files.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; when they are present,
:func:`setup` joins the process group with NCCL on CUDA and gloo on CPU, so the same command
line trains on one CPU, one GPU, or many GPUs and nodes. Under torchrun a run always goes
through the distributed code, even with one process (so ``torchrun --nproc_per_node 1`` checks
the NCCL path on a single GPU); without it nothing is joined.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from foresight.device import resolve_device


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) training job.

    Attributes:
        rank: Global index of this process.
        world_size: Number of processes.
        local_rank: Index of this process on its node.
        device: The device this process trains on.
        joined: This process is in a process group (launched by torchrun).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    joined: bool = False

    @property
    def is_main(self) -> bool:
        """True on the one process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when gradients are averaged across processes (every process under torchrun)."""
        return self.joined


def setup(requested_device: str) -> DistContext:
    """Join the torchrun process group if launched by torchrun, and pick this rank's device."""
    launched = "WORLD_SIZE" in os.environ
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device, local_rank)
    if launched and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            rank=rank,
            world_size=world_size,
            device_id=device if device.type == "cuda" else None,
        )
    return DistContext(rank, world_size, local_rank, device, joined=launched)


def teardown(ctx: DistContext) -> None:
    """Leave the process group (if this job joined one)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def mean_across(ctx: DistContext, value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over all processes (itself when not distributed)."""
    if not ctx.distributed:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / ctx.world_size


def broadcast_flag(ctx: DistContext, flag: bool) -> bool:
    """Rank 0's boolean, on every process (so all ranks stop together)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier(ctx: DistContext) -> None:
    """Wait for every process (a no-op when not distributed)."""
    if ctx.distributed:
        dist.barrier()
