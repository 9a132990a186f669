"""foresight's environments, registered with gymnasium, and the contract they share.

The contract every env implements is :class:`ForesightEnv` (:mod:`foresight.envs.base`); an
:class:`EnvSpec` names an env and its config (:mod:`foresight.envs.spec`); suites of tasks are
in :mod:`foresight.envs.suite`. Each env is a folder of its own: ``push/`` is
``foresight/Push-v0``, ``pusht/`` is ``foresight/PushT-v0`` (gym-pusht's Push-T).

Importing this package does two cheap things: it chooses the headless GL backend
(``MUJOCO_GL``, which must be set before ``mujoco`` is imported; a value the user set is kept)
and registers ``foresight/Push-v0`` and ``foresight/PushT-v0``. MuJoCo (with triton, which
must come before it, see :func:`foresight.envs.gl.load_triton_first`), gym-pusht and the env
classes load on first use of a name below (``from foresight.envs import PushEnv``, or
``gym.make``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gymnasium.envs.registration import register

from foresight.envs.gl import select_gl_backend

if TYPE_CHECKING:
    from foresight.envs.base import (
        ExplorationPolicy,
        ForesightEnv,
        Goal,
        PDKinematics,
        PlanarKinematics,
    )
    from foresight.envs.push.env import PushEnv
    from foresight.envs.push.policy import InteractionPolicy, PolicyConfig
    from foresight.envs.push.sim import ObjectSpec, PushConfig, PushSim
    from foresight.envs.push.tasks import (
        Layout,
        Task,
        TaskDistribution,
        sample_layout,
        sample_task,
    )
    from foresight.envs.spec import DEFAULT_ENV, EnvSpec, env_class, load_env
    from foresight.envs.suite import SuiteConfig, load_suite, sample_tasks

select_gl_backend()

ENV_ID = "foresight/Push-v0"

register(id=ENV_ID, entry_point="foresight.envs.push.env:PushEnv", max_episode_steps=30)
# Needs gym-pusht (the ``pusht`` extra); the env says so in one line when it is missing.
register(
    id="foresight/PushT-v0", entry_point="foresight.envs.pusht.env:PushTEnv", max_episode_steps=300
)

# Public name -> submodule defining it; loaded by __getattr__ on first access.
_LAZY = {
    "ExplorationPolicy": "base",
    "ForesightEnv": "base",
    "Goal": "base",
    "PDKinematics": "base",
    "PlanarKinematics": "base",
    "DEFAULT_ENV": "spec",
    "EnvSpec": "spec",
    "env_class": "spec",
    "load_env": "spec",
    "SuiteConfig": "suite",
    "load_suite": "suite",
    "sample_tasks": "suite",
    "PushEnv": "push.env",
    "InteractionPolicy": "push.policy",
    "PolicyConfig": "push.policy",
    "PushConfig": "push.sim",
    "ObjectSpec": "push.sim",
    "PushSim": "push.sim",
    "Layout": "push.tasks",
    "Task": "push.tasks",
    "TaskDistribution": "push.tasks",
    "sample_layout": "push.tasks",
    "sample_task": "push.tasks",
}

__all__ = [
    "DEFAULT_ENV",
    "ENV_ID",
    "EnvSpec",
    "ExplorationPolicy",
    "ForesightEnv",
    "Goal",
    "InteractionPolicy",
    "Layout",
    "ObjectSpec",
    "PDKinematics",
    "PlanarKinematics",
    "PolicyConfig",
    "PushConfig",
    "PushEnv",
    "PushSim",
    "SuiteConfig",
    "Task",
    "TaskDistribution",
    "env_class",
    "load_env",
    "load_suite",
    "sample_layout",
    "sample_task",
    "sample_tasks",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    # Cache it, so later lookups no longer come through here.
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
