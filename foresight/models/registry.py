"""The model registry and model-config loading: adding a model touches no shared if/elif."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from foresight.config import from_dict, read_yaml, resolve_config, with_overrides_from
from foresight.errors import ConfigError
from foresight.models.base import ModelConfig, VideoModel
from foresight.registry import Registry

M = TypeVar("M", bound=type[VideoModel])

#: Video models by the name a model config's ``model`` key gives.
MODELS = Registry[type[VideoModel]]("model")


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator: make a :class:`VideoModel` available under ``name`` (its ``name``)."""

    def wrap(cls: M) -> M:
        cls.name = name
        MODELS.add(name, cls)
        return cls

    return wrap


#: Model names of earlier versions that are presets now, and the model they name: a
#: checkpoint or config written with one loads as that model (its stored fields say the rest).
RENAMED = {"hvrnn": "vrnn", "vpn_baseline": "vpn"}


def canonical_model(name: str) -> str:
    """The registered name of ``name`` (itself, or what a renamed model is now)."""
    return RENAMED.get(name, name)


def model_class(name: str) -> type[VideoModel]:
    """The class registered as ``name`` (or as what a renamed model is now)."""
    return MODELS.lookup(canonical_model(name))


def untrained_models() -> list[str]:
    """Registered models that need no training (``trainable = False``), e.g. ``copy_last``.

    Each has a preset of its own name, so it can be evaluated or planned with from the preset.
    """
    return [name for name, cls in MODELS.items() if not cls.trainable]


def config_from_dict(data: dict[str, Any], source: str = "model config") -> ModelConfig:
    """Typed config of the model named by ``data['model']``; unknown keys are errors."""
    if "model" not in data:
        raise ConfigError(f"{source} has no 'model' key naming the model to build")
    data = {**data, "model": canonical_model(str(data["model"]))}
    return from_dict(model_class(data["model"]).config_class, data, source)


def load_model_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> ModelConfig:
    """Load ``configs/model/<name>.yaml`` or a model YAML path.

    Args:
        name_or_path: A preset name or a YAML path.
        overrides: Command-line overrides ``key.sub=value`` (e.g. ``train.lr=3e-4``), checked
            like the file's own keys.
    """
    path = resolve_config(name_or_path, "model")
    data = with_overrides_from(read_yaml(path, "model"), overrides)
    return config_from_dict(data, f"{path} (with overrides)" if overrides else str(path))


def build_model(config: ModelConfig) -> VideoModel:
    """Instantiate the model a config describes."""
    return model_class(config.model)(config)
