"""Planner configs (``configs/planner/<name>.yaml``): optimizer, horizon, cost, model batching.

The ``optimizer`` and ``cost`` blocks name their class (``name: cem``, ``name: object``);
the registry of that class gives the typed config, so each block only accepts its own keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from foresight.config import from_dict, resolve_config, to_dict
from foresight.errors import ConfigError
from foresight.planners.costs import CostConfig, ObjectCostConfig, cost_from_dict
from foresight.planners.optimizers import CEMConfig, OptimizerConfig, optimizer_from_dict


@dataclass(frozen=True)
class PlannerConfig:
    """Everything that defines the visual-foresight planner.

    Attributes:
        optimizer: The optimizer's config (``CEMConfig``, ``MPPIConfig``).
        horizon: Actions per imagined future (``H``).
        cost: The cost's config.
        num_samples: Futures sampled per sequence by stochastic models.
        batch_size: Sequences per model ``rollout`` call (halved on CUDA out-of-memory).
    """

    optimizer: Any = None
    horizon: int = 10
    cost: Any = None
    num_samples: int = 1
    batch_size: int = 200

    def __post_init__(self) -> None:
        # Frozen dataclass: defaults that are themselves configs are filled in here.
        if self.optimizer is None:
            object.__setattr__(self, "optimizer", CEMConfig())
        if self.cost is None:
            object.__setattr__(self, "cost", ObjectCostConfig())
        if not isinstance(self.optimizer, OptimizerConfig):
            raise ConfigError("planner 'optimizer' must be an optimizer config")
        if not isinstance(self.cost, CostConfig):
            raise ConfigError("planner 'cost' must be a cost config")
        if self.horizon < 1:
            raise ConfigError(f"planner horizon must be at least 1, got {self.horizon}")
        if self.num_samples < 1 or self.batch_size < 1:
            raise ConfigError("planner num_samples and batch_size must be at least 1")


def planner_from_dict(data: dict[str, Any], source: str = "planner config") -> PlannerConfig:
    """A :class:`PlannerConfig` from plain values; unknown keys (in any block) are errors."""
    data = dict(data)
    for key, build in (("optimizer", optimizer_from_dict), ("cost", cost_from_dict)):
        if key in data:
            if not isinstance(data[key], dict):
                raise ConfigError(f"{source}: '{key}' must be a mapping with a 'name'")
            data[key] = build(data[key], source)
    return from_dict(PlannerConfig, data, source)


def load_planner(name_or_path: str | Path) -> PlannerConfig:
    """Load a planner preset (``cem``, ``mppi``) or a planner YAML file."""
    path = resolve_config(name_or_path, "planner")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values")
    return planner_from_dict(data, str(path))


def planner_to_dict(config: PlannerConfig) -> dict[str, Any]:
    """Plain values of a planner config (round-trips through :func:`planner_from_dict`)."""
    return {
        "optimizer": to_dict(config.optimizer),
        "horizon": config.horizon,
        "cost": to_dict(config.cost),
        "num_samples": config.num_samples,
        "batch_size": config.batch_size,
    }
