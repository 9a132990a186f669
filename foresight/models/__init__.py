"""Video models. Importing this package registers every model.

To add a model: write ``foresight/models/<name>.py`` with a config dataclass and a
``@register_model`` class, and add ``configs/model/<name>.yaml``; every module of this
package is imported here, so nothing else names it.
"""

import importlib
import pkgutil

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

# Every module, in name order (so registration order, and every list of models, is stable).
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")

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
