"""Training any registered video model: the loop, DDP, mixed precision, resumable state."""

from foresight.training.distributed import DistContext
from foresight.training.optim import NonFiniteLoss, Optimization
from foresight.training.precision import Precision, pick_precision
from foresight.training.trainer import (
    TrainOptions,
    TrainResult,
    TrainStep,
    train,
    with_overrides,
)

__all__ = [
    "DistContext",
    "NonFiniteLoss",
    "Optimization",
    "Precision",
    "TrainOptions",
    "TrainResult",
    "TrainStep",
    "pick_precision",
    "train",
    "with_overrides",
]
