"""MuJoCo tabletop pushing environments, registered with gymnasium.

Importing this package chooses the headless GL backend first (``MUJOCO_GL`` must be set
before ``mujoco`` is imported), then registers ``foresight/Push-v0``.
"""

from foresight.envs.gl import select_gl_backend

select_gl_backend()

from gymnasium.envs.registration import register  # noqa: E402

from foresight.envs.push_v0 import PushEnv  # noqa: E402
from foresight.envs.sim import EnvConfig, ObjectSpec, PushSim  # noqa: E402
from foresight.envs.tasks import (  # noqa: E402
    Layout,
    SuiteConfig,
    Task,
    TaskDistribution,
    load_suite,
    sample_layout,
    sample_task,
    sample_tasks,
)

ENV_ID = "foresight/Push-v0"

register(id=ENV_ID, entry_point="foresight.envs.push_v0:PushEnv", max_episode_steps=30)

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
