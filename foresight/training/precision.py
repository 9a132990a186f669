"""Mixed precision and kernel choice: how a device computes a training step.

Policy:

* **CPU** trains in float32, bit-for-bit reproducible (and what the tests check).
* **CUDA** runs forward passes under autocast: ``bf16`` where the GPU supports it (float32's
  range, so no loss scaling), else ``fp16`` with one loss scaler per optimizer.
* **Recurrent state stays float32** under autocast. A cell's gates may be computed in the
  autocast dtype, but the cell state ``c`` is accumulated, and ``h`` kept, in float32:
  bf16's 8-bit mantissa would round ``c = f * c + i * g`` at every one of 10-28 steps
  (:class:`~foresight.models.layers.ConvLSTMCell`). ``nn.LSTM`` runs outside autocast in
  float32 (:class:`~foresight.models.layers.LSTMStack`): autocast would cast it to half.
* **Losses** that nearly cancel (Gaussian KL) are computed in float32
  (:func:`~foresight.models.layers.gaussian_kl`), and so are the optimizers' updates.
* **Kernels** (:func:`kernel_settings`): on CUDA, cuDNN autotuning and TF32 matmuls unless
  ``train.deterministic`` asks for deterministic kernels only.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
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


#: cuBLAS needs a fixed workspace for deterministic matmuls (CUDA >= 10.2).
CUBLAS_WORKSPACE = ":4096:8"


@contextlib.contextmanager
def kernel_settings(device: torch.device, deterministic: bool) -> Iterator[None]:
    """Choose kernels for a training run on ``device``; torch's flags are restored after.

    Args:
        device: The training device.
        deterministic: Deterministic kernels only (``train.deterministic``): torch's
            deterministic algorithms (an op without one raises), cuDNN without autotuning
            or TF32. Otherwise, on CUDA, cuDNN autotunes its convolutions for the shapes
            seen and float32 matmuls may use TF32.
    """
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        cudnn.deterministic,
        cudnn.benchmark,
        cudnn.allow_tf32,
        matmul.allow_tf32,
    )
    try:
        if deterministic:
            if device.type == "cuda" and "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
                if torch.cuda.is_initialized():
                    warnings.warn(
                        "train.deterministic: CUDA was initialised before "
                        f"CUBLAS_WORKSPACE_CONFIG was set; export CUBLAS_WORKSPACE_CONFIG="
                        f"{CUBLAS_WORKSPACE} before launching for deterministic matmuls",
                        stacklevel=2,
                    )
                os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
            torch.use_deterministic_algorithms(True)
            cudnn.deterministic, cudnn.benchmark = True, False
            cudnn.allow_tf32 = matmul.allow_tf32 = False
        elif device.type == "cuda":
            cudnn.benchmark = True
            cudnn.allow_tf32 = matmul.allow_tf32 = True
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = saved[1:]
