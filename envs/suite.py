"""Task suites: a fixed, seeded set of task instances in a named env, the same for every model.

A suite (``configs/suite/<name>.yaml``) names its env preset (``env:``) and gives that env's
task distribution (``tasks:``, checked against the env's ``task_distribution_class``). Task
``i`` of a suite depends only on ``(seed, i)``, so every model is judged on the same instances
whatever the number of workers or episodes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from foresight.config import check_seed, from_dict, read_yaml, resolve_config
from foresight.envs.spec import EnvSpec, load_env
from foresight.errors import ConfigError


@dataclass(frozen=True)
class SuiteConfig:
    """A fixed, seeded suite of tasks (``configs/suite/<name>.yaml``).

    Attributes:
        name: Suite name, reported next to results.
        tasks: The env's task distribution (a ``task_distribution_class`` instance once
            loaded by :func:`load_suite`).
        episodes: Default number of tasks (episodes) in the suite.
        seed: Suite seed; task ``i`` depends only on ``(seed, i)``.
        episode_steps: Actions per episode; success is judged after the last.
        replan_every: Actions executed from each plan before replanning.
        env: Env preset (``configs/env/``), env YAML path or env id the tasks are set in.
    """

    name: str
    tasks: Any
    episodes: int = 20
    seed: int = 0
    episode_steps: int = 30
    replan_every: int = 1
    env: str = "push"

    def __post_init__(self) -> None:
        for key in ("episodes", "episode_steps", "replan_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"'{key}' must be at least 1, got {getattr(self, key)}")
        check_seed(self.seed, "'seed'")

    def env_spec(self) -> EnvSpec:
        """The env the suite's tasks are set in."""
        return load_env(self.env)


def load_suite(name_or_path: str | Path) -> SuiteConfig:
    """Load a suite preset (``easy``, ``hard``) or a suite YAML file, its tasks typed.

    Raises:
        ConfigError: A missing file, an unknown key (in the suite or its ``tasks:``), or an env
            that does not resolve.
    """
    path = resolve_config(name_or_path, "suite")
    suite = from_dict(SuiteConfig, read_yaml(path, "suite"), str(path))
    if not isinstance(suite.tasks, dict):
        raise ConfigError(f"{path}: 'tasks' must be a mapping of the env's task settings")
    try:
        cls = suite.env_spec().env_class
    except ConfigError as err:
        raise ConfigError(f"{path}: 'env': {err}") from err
    tasks = from_dict(cls.task_distribution_class, suite.tasks, f"{path}: 'tasks'")
    return replace(suite, tasks=tasks)


def sample_tasks(env: EnvSpec, distribution: Any, seed: int, num: int, start: int = 0) -> list[Any]:
    """Tasks ``start .. start+num-1`` of the suite seeded by ``seed``, set in ``env``.

    Task ``i`` is drawn from its own generator seeded by ``(seed, i)``, so it is the same
    whichever other tasks are asked for.
    """
    cls, config = env.env_class, env.typed()
    return [
        cls.sample_task(np.random.default_rng([seed, i]), config, distribution, i)
        for i in range(start, start + num)
    ]
