"""How much memory a training step needs, estimated without running it (no GPU needed).

The model is built from fake tensors (``FakeTensorMode``): CPU tensors with shapes and dtypes
but no data, so one forward pass of its loss runs at the real batch in about a second whatever
the preset's size, and under CPU autocast as a real one would (``meta`` tensors, the other
data-less kind, ignore autocast). Every tensor autograd saves for backward is counted once (by
storage), which on real tensors is exactly what a CPU forward saves (tested). Losses that read
a value back as a Python number (``float(loss)``) get a placeholder, since a fake tensor has
none.

Precision: activations are counted as bf16 CPU autocast saves them, standing for CUDA's bf16
autocast (``amp=None``: float32, what CPU training saves). Both run convolutions and matmuls in
bf16 and pointwise operations in their inputs' dtype; CUDA's also moves a few reductions
(softmax, norms) to float32, which the models here already ask for explicitly where it matters
(the VPN's softmax, the KL terms), as they keep recurrent state in float32.

The estimate is a lower bound on a GPU's peak by what it leaves out (the allocator's
fragmentation, cuDNN workspaces, the CUDA context, and transient tensors: a layer's output
before the next uses it, the gradients in flight during backward, a checkpointed block's
recomputed activations), so a preset should leave a fifth or more of a GPU free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
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
        activations: Tensors saved for backward, in the dtypes the step saves them in.
        precision: Autocast dtype the activations were counted under (``bf16``, ``fp32``).
    """

    batch: int
    params: int
    grads: int
    optimizer: int
    activations: int
    precision: str = "bf16"

    @property
    def total(self) -> int:
        """All of it, in bytes."""
        return self.params + self.grads + self.optimizer + self.activations

    def __str__(self) -> str:
        gib = 2**30
        return (
            f"weights {self.params / gib:.2f} + grads {self.grads / gib:.2f} + optimizer "
            f"{self.optimizer / gib:.2f} + activations ({self.precision}) "
            f"{self.activations / gib:.1f} GiB"
        )


class _Placeholders(TorchDispatchMode):
    """Answers ``Tensor.item()`` on fake tensors (which hold no value) with a placeholder."""

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.ops.aten._local_scalar_dense.default:
            t = args[0]
            return False if t.dtype == torch.bool else (1.0 if t.is_floating_point() else 0)
        return func(*args, **(kwargs or {}))


def saved_activation_bytes(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], amp: torch.dtype | None = None
) -> int:
    """Bytes of the tensors one forward of ``model.loss(batch)`` saves for backward.

    Args:
        model: A :class:`~foresight.models.base.VideoModel` on the CPU (real or fake tensors).
        batch: Training windows on the model's device (see :meth:`VideoModel.loss`).
        amp: Autocast dtype of the forward (CPU autocast), or None for float32.
    """
    weights = {p.untyped_storage()._cdata for p in model.parameters()}
    saved: dict[int, torch.UntypedStorage] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        # Keeping the storage keeps its address (the key) from being reused by a later one.
        storage = t.untyped_storage()
        if storage._cdata not in weights:
            saved.setdefault(storage._cdata, storage)
        return t

    with (
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        _Placeholders(),
        torch.autocast("cpu", dtype=amp, enabled=amp is not None),
    ):
        model.train()
        model.loss(batch, step=10**9)
    return sum(s.nbytes() for s in saved.values())


def estimate_training_memory(
    config: ModelConfig, processes: int = 1, amp: torch.dtype | None = torch.bfloat16
) -> MemoryEstimate:
    """Peak memory of one training process of ``config`` at its batch, split over processes.

    Optimizer state is counted per parameter from the optimizer's kind (Adam two moments,
    RMSprop one), not measured.

    Args:
        config: A model config (its ``train.batch_size`` is the whole step's batch).
        processes: Processes (GPUs) the batch is split over.
        amp: Autocast dtype activations are counted under (bf16: CUDA training's default,
            ``train.amp``), or None for float32.
    """
    batch = max(1, config.train.batch_size // processes)
    # Real tensors made outside (a mask, a constant) may meet fake ones: allowed, as values.
    with FakeTensorMode(allow_non_fake_inputs=True):
        model = build_model(config)
        frames = torch.empty(batch, config.window, 3, config.image_size, config.image_size)
        data = {
            FRAMES: frames.to(type(model).frame_dtype),
            STATES: torch.empty(batch, config.window, config.state_dim),
            ACTIONS: torch.empty(batch, config.window - 1, config.action_dim),
        }
        params = list(model.parameters())
        param_bytes = sum(p.numel() * p.element_size() for p in params)
        grad_bytes = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
        optimizer_bytes = activations = 0
        if type(model).trainable:
            for spec in model.optimizers().values():
                slots = _STATE_SLOTS.get(type(spec.optimizer), 2)
                optimizer_bytes += slots * sum(p.numel() * p.element_size() for p in spec.params)
            activations = saved_activation_bytes(model, data, amp)
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(amp, str(amp))
    return MemoryEstimate(batch, param_bytes, grad_bytes, optimizer_bytes, activations, precision)
