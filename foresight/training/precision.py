"""Mixed precision: autocast (bf16, or fp16 with loss scaling) on CUDA, float32 on CPU."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Precision:
    """How a device runs forward passes.

    Attributes:
        device_type: ``cuda`` or ``cpu``.
        dtype: Autocast dtype, or None for plain float32.
    """

    device_type: str
    dtype: torch.dtype | None = None

    @property
    def name(self) -> str:
        """``bf16``, ``fp16`` or ``fp32``, for logs."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[self.dtype]

    @property
    def needs_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has float32's range."""
        return self.dtype == torch.float16

    def autocast(self) -> torch.autocast:
        """A fresh autocast context for one forward pass."""
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A loss scaler, enabled only when this precision needs one."""
        return torch.amp.GradScaler(self.device_type, enabled=self.needs_scaler)


def pick_precision(amp: str, device: torch.device) -> Precision:
    """The precision ``train.amp`` asks for on ``device``.

    CPU always trains in float32 (bit-for-bit reproducible, and what the tests check); on a
    GPU without bf16 support, ``bf16`` falls back to ``fp16`` with loss scaling.
    """
    if device.type != "cuda" or amp == "off":
        return Precision(device.type)
    if amp == "bf16" and torch.cuda.is_bf16_supported():
        return Precision("cuda", torch.bfloat16)
    return Precision("cuda", torch.float16)
