"""Video models. Importing this package registers every model.

To add a model: write ``foresight/models/<name>.py`` with a config dataclass and a
``@register_model`` class, import it below, and add ``configs/model/<name>.yaml``.
"""

from foresight.models import copy_last, gan, svg, vpn, vrnn  # noqa: F401  (registers)
from foresight.models.base import ModelConfig, PlanBudget, TrainConfig, VideoModel
from foresight.models.checkpoint import load_model, read_checkpoint, save_checkpoint
from foresight.models.registry import (
    MODELS,
    build_model,
    config_from_dict,
    load_model_config,
    model_class,
    register_model,
    untrained_models,
)

__all__ = [
    "MODELS",
    "ModelConfig",
    "PlanBudget",
    "TrainConfig",
    "VideoModel",
    "build_model",
    "config_from_dict",
    "load_model",
    "load_model_config",
    "read_checkpoint",
    "save_checkpoint",
    "untrained_models",
    "model_class",
    "register_model",
]
