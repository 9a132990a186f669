"""Learning-rate schedule: linear warm-up to the peak rate, then constant.

A constant rate after warm-up keeps the schedule independent of ``max_steps``, so a run
extended with ``--resume --max-steps`` larger continues exactly as a longer run would have.
"""

from __future__ import annotations

import torch


def warmup_lr(step: int, peak: float, warmup_steps: int) -> float:
    """Learning rate of optimisation step ``step`` (0-based).

    Args:
        step: Steps already taken.
        peak: Rate after warm-up.
        warmup_steps: Steps of linear warm-up from ``peak / warmup_steps`` to ``peak``.
    """
    if warmup_steps <= 0 or step >= warmup_steps:
        return peak
    return peak * (step + 1) / warmup_steps


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Apply ``lr`` to every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
