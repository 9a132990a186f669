"""Push-T tasks: DINO-WM's protocol (goals along exploration trajectories) and random goals.

DINO-WM (Zhou et al. 2025, ``conf/plan_pusht.yaml`` and ``plan.py`` of gaoyuezhou/dino_wm)
plans from a state of a held-out trajectory to the state the simulator reaches by replaying the
next ``frameskip x goal_H = 5 x 5 = 25`` actions of that trajectory, and counts success when the
agent and block positions are within 20 px (one L2 norm over the four numbers) and the block's
angle within π/9 (``eval_state`` of their Push-T wrapper). Here the trajectory is the
exploration policy's, from a random state, seeded by ``(seed, i)``: the same policy that
collects the training data, on seeds it never used, so it plays the part of their held-out
split without a dataset file. ``goal: random`` draws the block's goal pose anywhere instead (the
harder suite). All positions are gym-pusht pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from foresight.errors import ConfigError

#: Pixels per metre (foresight reads gym-pusht's pixel as a millimetre).
MM = 1000.0

if TYPE_CHECKING:
    from foresight.envs.pusht.env import PushTConfig


def angle_error(a: float, b: float) -> float:
    """``|a - b|`` wrapped to ``[0, π]``."""
    d = abs(a - b) % (2 * math.pi)
    return min(d, 2 * math.pi - d)


@dataclass(frozen=True)
class PushTTask:
    """One Push-T task: from ``start``, bring the block to ``goal_block``.

    When the test includes the agent (DINO-WM's), the agent must end at ``goal_agent`` too.

    Attributes:
        task_id: Index within its suite.
        start: ``(10,)`` the initial state (gym-pusht pixels, see :class:`PushTEnv`).
        goal_block: ``(3,)`` the block's goal x, y (px) and angle (rad).
        goal_agent: ``(2,)`` the agent's goal position (px).
        position_threshold: Success distance (px).
        angle_threshold: Success angle (rad).
        include_agent: The success distance joins the agent's error to the block's (DINO-WM).
    """

    task_id: int
    start: tuple[float, ...]
    goal_block: tuple[float, float, float]
    goal_agent: tuple[float, float]
    position_threshold: float = 20.0
    angle_threshold: float = math.pi / 9
    include_agent: bool = True

    def block_distance(self, state: np.ndarray) -> float:
        """The block's position error (px)."""
        return float(np.hypot(*(np.asarray(state[4:6]) - self.goal_block[:2])))

    def success(self, state: np.ndarray) -> bool:
        """The task's success test on a state (``(10,)``, px)."""
        err = np.asarray(state[4:6]) - self.goal_block[:2]
        if self.include_agent:
            err = np.concatenate([np.asarray(state[:2]) - self.goal_agent, err])
        close = float(np.linalg.norm(err)) < self.position_threshold
        return close and angle_error(float(state[6]), self.goal_block[2]) < self.angle_threshold


@dataclass(frozen=True)
class PushTTasks:
    """How Push-T tasks are drawn (a suite's ``tasks:`` block).

    Attributes:
        goal: ``trajectory``: the goal is the state ``goal_steps`` exploration steps after the
            start (DINO-WM's protocol); ``random``: the block's goal pose is drawn uniformly
            (``[100, 400)`` px, any angle) and the agent's goal is not tested.
        goal_steps: Exploration steps from the start to the goal (DINO-WM: 25).
        warmup_steps: Inclusive range of exploration steps before the start state, so starts
            lie along trajectories rather than at rest.
        position_threshold: Success distance (m; 0.02 = 20 px).
        angle_threshold: Success angle (rad; DINO-WM: π/9).
        include_agent: The success distance joins the agent's error to the block's (DINO-WM);
            always off for ``random`` goals.
        min_block_motion: Redraw a ``trajectory`` task whose block moves less than this (m)
            between start and goal (0: the published protocol, which keeps them).
    """

    goal: Literal["trajectory", "random"] = "trajectory"
    goal_steps: int = 25
    warmup_steps: tuple[int, int] = (0, 20)
    position_threshold: float = 0.02
    angle_threshold: float = math.pi / 9
    include_agent: bool = True
    min_block_motion: float = 0.0

    def __post_init__(self) -> None:
        if self.goal_steps < 1:
            raise ConfigError(f"'goal_steps' must be at least 1, got {self.goal_steps}")
        lo, hi = self.warmup_steps
        if not 0 <= lo <= hi:
            raise ConfigError(f"'warmup_steps' must be 0 <= low <= high, got {[lo, hi]}")
        if self.position_threshold <= 0 or self.angle_threshold <= 0:
            raise ConfigError("'position_threshold' and 'angle_threshold' must be positive")
        if self.min_block_motion < 0:
            raise ConfigError(f"'min_block_motion' must be >= 0, got {self.min_block_motion}")


#: The T's corners must stay this far inside the table's edge (px) at a task's start and goal:
#: the kinematic agent can squeeze the block through gym-pusht's walls, and a goal off the table
#: is no goal.
ON_TABLE = (10.0, 502.0)


def _on_table(env: Any, state: np.ndarray) -> bool:
    env.set_state(state)
    corners = env.sim.get_keypoints(env.sim._block_shapes)
    return bool(np.all((corners > ON_TABLE[0]) & (corners < ON_TABLE[1])))


def sample_task(
    env_class: Any, rng: np.random.Generator, config: PushTConfig, dist: PushTTasks, task_id: int
) -> PushTTask:
    """Draw one task of ``dist`` from ``rng`` (a private env runs the exploration policy).

    Tasks whose block leaves the table (start or goal) are redrawn.
    """
    env = env_class(config)
    try:
        policy_config = env.policy_config_class()
        for _ in range(100):
            obs, info = env.reset(seed=int(rng.integers(2**31)))
            policy = env.exploration_policy(rng, policy_config)
            # The policy reads only info: simulate without rendering frames nobody looks at.
            for _ in range(int(rng.integers(dist.warmup_steps[0], dist.warmup_steps[1] + 1))):
                env.simulate(policy(obs, info))
                info = env._info()
            start = env.get_state()
            start[[2, 3, 7, 8, 9]] = 0.0  # tasks start at rest
            if not _on_table(env, start):
                continue
            if dist.goal == "random":
                pose = (*rng.uniform(100, 400, 2), rng.uniform(-math.pi, math.pi))
                if not _on_table(env, np.array([*start[:4], *pose, 0.0, 0.0, 0.0])):
                    continue
                goal_block, goal_agent, include_agent = pose, (0.0, 0.0), False
            else:
                env.set_state(start)
                info = env._info()
                for _ in range(dist.goal_steps):
                    env.simulate(policy(obs, info))
                    info = env._info()
                end = env.get_state()
                if not _on_table(env, end):
                    continue
                goal_block, goal_agent = tuple(end[4:7]), tuple(end[:2])
                include_agent = dist.include_agent
                if np.hypot(*(end[4:6] - start[4:6])) < dist.min_block_motion * MM:
                    continue
            return PushTTask(
                task_id=task_id,
                start=tuple(float(v) for v in start),
                goal_block=tuple(float(v) for v in goal_block),  # type: ignore[arg-type]
                goal_agent=tuple(float(v) for v in goal_agent),  # type: ignore[arg-type]
                position_threshold=dist.position_threshold * MM,
                angle_threshold=dist.angle_threshold,
                include_agent=include_agent,
            )
    finally:
        env.close()
    raise ConfigError("could not draw a Push-T task whose block moves; lower min_block_motion")
