"""FLOPs of a step, and the measured matmul peak of the machine they are compared with.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``: the matrix products and
convolutions (forward, and backward when it runs inside), which dominate every model here;
pointwise operations are not counted. Recomputation (activation checkpointing) is counted, as
it is work the device does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def counted_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matrix products and convolutions ``fn()`` runs.

    Counting intercepts every operation, so time ``fn`` separately.
    """
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def matmul_peak(device: torch.device, n: int = 2048, iters: int = 5) -> float:
    """Measured float32 FLOP/s of an ``n x n`` matmul on ``device`` (at the set thread count).

    The practical peak a step's FLOP/s is compared with: what the device's BLAS reaches on
    one large product, not the datasheet's number.
    """
    a, b = (torch.rand(n, n, device=device) for _ in range(2))
    a @ b  # warm-up (library initialisation, clocks)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 2 * n**3 * iters / (time.perf_counter() - start)
