"""How much memory a training step needs, estimated without running it (no GPU needed).

The model is built on PyTorch's ``meta`` device, where tensors have shapes and dtypes but no
data, and one forward pass of its loss runs at the real batch in about a second whatever the
preset's size. Every tensor autograd saves for backward is counted once (by storage), which on
real tensors is exactly what a CPU forward saves (tested). Losses that read a value back as a
Python number (``float(loss)``) get a placeholder, since a meta tensor has none.

The estimate is a lower bound on a GPU's peak by what it leaves out (the allocator's
fragmentation, cuDNN workspaces, transient tensors alive only inside one layer) and an upper
bound by precision: activations are counted at float32, while bf16 autocast saves most of
them (convolution inputs) at half the size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from foresight.batch import ACTIONS, FRAMES, STATES
from foresight.models.base import ModelConfig
from foresight.models.registry import build_model

#: Per-parameter state tensors of the optimizers models use (Adam: two moments; RMSprop:
#: one square average). Others are counted as Adam.
_STATE_SLOTS = {torch.optim.Adam: 2, torch.optim.AdamW: 2, torch.optim.RMSprop: 1}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training process holds at the peak of a step.

    Attributes:
        batch: Sequences per process the estimate is for.
        params: Weights.
        grads: Their gradients.
        optimizer: Optimizer state (moments).
        activations: Tensors saved for backward, at float32.
    """

    batch: int
    params: int
    grads: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        """All of it, in bytes."""
        return self.params + self.grads + self.optimizer + self.activations

    def __str__(self) -> str:
        gib = 2**30
        return (
            f"weights {self.params / gib:.2f} + grads {self.grads / gib:.2f} + optimizer "
            f"{self.optimizer / gib:.2f} + activations {self.activations / gib:.1f} GiB"
        )


class _Placeholders(TorchDispatchMode):
    """Answers ``Tensor.item()`` on meta tensors (which hold no value) with a placeholder."""

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.ops.aten._local_scalar_dense.default:
            t = args[0]
            return False if t.dtype == torch.bool else (1.0 if t.is_floating_point() else 0)
        return func(*args, **(kwargs or {}))


def saved_activation_bytes(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> int:
    """Bytes of the tensors one forward of ``model.loss(batch)`` saves for backward.

    Args:
        model: A :class:`~foresight.models.base.VideoModel` (on any device, ``meta`` too).
        batch: Training windows on the model's device (see :meth:`VideoModel.loss`).
    """
    weights = {p.untyped_storage()._cdata for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage()._cdata
        if key not in weights:
            saved.setdefault(key, t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), _Placeholders():
        model.train()
        model.loss(batch, step=10**9)
    return sum(saved.values())


def estimate_training_memory(config: ModelConfig, processes: int = 1) -> MemoryEstimate:
    """Peak memory of one training process of ``config`` at its batch, split over processes.

    Args:
        config: A model config (its ``train.batch_size`` is the whole step's batch).
        processes: Processes (GPUs) the batch is split over.
    """
    batch = max(1, config.train.batch_size // processes)
    with torch.device("meta"):
        model = build_model(config)
        frames = torch.empty(batch, config.window, 3, config.image_size, config.image_size)
        data = {
            FRAMES: frames.to(type(model).frame_dtype),
            STATES: torch.empty(batch, config.window, config.state_dim),
            ACTIONS: torch.empty(batch, config.window - 1, config.action_dim),
        }
    params = [p for p in model.parameters()]
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    grad_bytes = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    optimizer_bytes = 0
    if type(model).trainable:
        for spec in model.optimizers().values():
            slots = _STATE_SLOTS.get(type(spec.optimizer), 2)
            optimizer_bytes += slots * sum(p.numel() * p.element_size() for p in spec.params)
    activations = saved_activation_bytes(model, data) if type(model).trainable else 0
    return MemoryEstimate(batch, param_bytes, grad_bytes, optimizer_bytes, activations)
