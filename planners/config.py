"""Planner configs (``configs/planner/<name>.yaml``): optimizer, horizon, cost, model batching.

The ``optimizer`` and ``cost`` blocks name their class (``name: cem``, ``name: object``);
the registry of that class gives the typed config, so each block only accepts its own keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foresight.config import from_dict, read_yaml, resolve_config, to_dict, with_overrides_from
from foresight.errors import ConfigError
from foresight.planners.costs import CostConfig, ObjectCostConfig, cost_from_dict
from foresight.planners.optimizers import CEMConfig, OptimizerConfig, optimizer_from_dict
from foresight.results import EffectiveBudget

if TYPE_CHECKING:
    from foresight.models import PlanBudget


@dataclass(frozen=True)
class PlannerConfig:
    """Everything that defines the visual-foresight planner.

    Attributes:
        optimizer: The optimizer's config (``CEMConfig``, ``MPPIConfig``).
        horizon: Actions per imagined future (``H``).
        cost: The cost's config.
        num_samples: Futures sampled per sequence by stochastic models.
        batch_size: Sequences per model ``rollout`` call (halved on CUDA out-of-memory).
        to_episode_end: Where an episode's step budget ends inside the horizon, score the
            imagined future there (the cost's last frame is the episode's last step, not a
            frame past it). An MPC whose horizon runs past the budget trades the state the task
            is judged on for a better one after it: on Push-T, the block's angle fixed in a
            future the episode never reaches, at the price of the agent's place at the end.
        replan_every: Actions the MPC executes from each plan before replanning; None keeps
            the suite's (its protocol's). A planner for a model with ``frame_skip: k`` may
            replan every ``k`` steps, one imagined frame, so that each plan starts where the
            model's frames do.
    """

    optimizer: Any = None
    horizon: int = 10
    cost: Any = None
    num_samples: int = 1
    batch_size: int = 200
    to_episode_end: bool = False
    replan_every: int | None = None

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
        if self.replan_every is not None and self.replan_every < 1:
            raise ConfigError(
                f"planner replan_every must be at least 1 (or null: the suite's), got "
                f"{self.replan_every}"
            )


def planner_from_dict(data: dict[str, Any], source: str = "planner config") -> PlannerConfig:
    """A :class:`PlannerConfig` from plain values; unknown keys (in any block) are errors."""
    data = dict(data)
    for key, build in (("optimizer", optimizer_from_dict), ("cost", cost_from_dict)):
        if key in data:
            if not isinstance(data[key], dict):
                raise ConfigError(f"{source}: '{key}' must be a mapping with a 'name'")
            data[key] = build(data[key], source)
    return from_dict(PlannerConfig, data, source)


def load_planner(name_or_path: str | Path, overrides: Sequence[str] = ()) -> PlannerConfig:
    """Load a planner preset (``cem``, ``mppi``) or a planner YAML file.

    Args:
        name_or_path: A preset name or a YAML path.
        overrides: Command-line overrides ``key.sub=value`` (``optimizer.samples=128``).
    """
    path = resolve_config(name_or_path, "planner")
    data = with_overrides_from(read_yaml(path, "planner"), overrides)
    return planner_from_dict(data, f"{path} (with overrides)" if overrides else str(path))


def planner_to_dict(config: PlannerConfig) -> dict[str, Any]:
    """Plain values of a planner config (round-trips through :func:`planner_from_dict`).

    Every field is written, so a field added to :class:`PlannerConfig` is recorded in a run's
    settings without being listed here.
    """
    return to_dict(config)


def apply_budget(
    planner: PlannerConfig, budget: PlanBudget | None
) -> tuple[PlannerConfig, EffectiveBudget]:
    """The planner with a model's budget (its config's ``plan:`` block) on top of the preset's.

    Fields the model leaves None keep the preset's value. Iterations apply to every optimizer
    that iterates (CEM and MPPI both do). When the model changes CEM's samples, its elites keep
    their share of the samples (at least 2, so the refit still has a spread).

    Args:
        planner: The planner preset or YAML as loaded.
        budget: The model's ``plan`` block (None: a planner without a model, e.g. the oracle).

    Returns:
        The planner to run, and the budget it runs with.
    """
    fields = ("samples", "iterations", "batch_size", "num_samples")
    asked = {k: getattr(budget, k) for k in fields if getattr(budget, k, None) is not None}
    optimizer = planner.optimizer
    changes = {k: asked[k] for k in ("samples", "iterations") if k in asked}
    if "samples" in changes and hasattr(optimizer, "elites"):
        share = optimizer.elites / optimizer.samples
        changes["elites"] = min(changes["samples"], max(2, round(share * changes["samples"])))
    try:
        optimizer = replace(optimizer, **changes)
        planner = replace(
            planner,
            optimizer=optimizer,
            **{k: asked[k] for k in ("batch_size", "num_samples") if k in asked},
        )
    except ConfigError as err:
        raise ConfigError(f"the model's plan budget does not fit the planner: {err}") from err
    used = EffectiveBudget(
        samples=optimizer.samples,
        iterations=optimizer.iterations,
        batch_size=planner.batch_size,
        num_samples=planner.num_samples,
        from_model=tuple(asked),
    )
    return planner, used
