"""MuJoCo tabletop pushing environments, registered with gymnasium.

Importing this package does two cheap things: it chooses the headless GL backend
(``MUJOCO_GL``, which must be set before ``mujoco`` is imported; a value the user set is kept)
and registers ``foresight/Push-v0``. MuJoCo (with triton, which must come before it, see
:func:`foresight.envs.gl.load_triton_first`) and the env classes load on first use of a name
below (``from foresight.envs import PushEnv``, or ``gym.make``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gymnasium.envs.registration import register

from foresight.envs.gl import select_gl_backend

if TYPE_CHECKING:
    from foresight.envs.push_v0 import PushEnv
    from foresight.envs.sim import EnvConfig, ObjectSpec, PushSim
    from foresight.envs.tasks import (
        Layout,
        SuiteConfig,
        Task,
        TaskDistribution,
        load_suite,
        sample_layout,
        sample_task,
        sample_tasks,
    )

select_gl_backend()

ENV_ID = "foresight/Push-v0"

register(id=ENV_ID, entry_point="foresight.envs.push_v0:PushEnv", max_episode_steps=30)

# Public name -> submodule defining it; loaded by __getattr__ on first access.
_LAZY = {
    "PushEnv": "push_v0",
    "EnvConfig": "sim",
    "ObjectSpec": "sim",
    "PushSim": "sim",
    "Layout": "tasks",
    "SuiteConfig": "tasks",
    "Task": "tasks",
    "TaskDistribution": "tasks",
    "load_suite": "tasks",
    "sample_layout": "tasks",
    "sample_task": "tasks",
    "sample_tasks": "tasks",
}

__all__ = [
    "ENV_ID",
    "EnvConfig",
    "Layout",
    "ObjectSpec",
    "PushEnv",
    "PushSim",
    "SuiteConfig",
    "Task",
    "TaskDistribution",
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
