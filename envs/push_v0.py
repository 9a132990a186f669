"""``foresight/Push-v0``: push coloured objects across a table with a planar pusher.

Observation: ``{"image": (H, W, 3) uint8, "state": (2,) float32 pusher xy}``.
Action: ``(2,)`` in [-1, 1], the pusher's Δxy in units of ``max_step`` metres.
Reward: minus the target's distance to its goal when a task is set, else 0.
Randomness comes only from ``self.np_random``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from foresight.config import from_dict
from foresight.envs.sim import EnvConfig, PushSim
from foresight.envs.tasks import Layout, Task, sample_layout


class PushEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """Tabletop pushing with a fixed top-down camera.

    Args:
        config: Scene settings, as an :class:`EnvConfig` or a plain dict of its fields.
        image_size: Overrides ``config.image_size``.
        render_mode: ``"rgb_array"`` or None.

    ``reset(options={"task": task})`` sets up a :class:`Task`; ``options={"num_objects": n}``
    a random layout with ``n`` objects. ``info`` always holds ``pusher_pos`` ``(2,)``,
    ``object_pos`` ``(K, 3)`` and ``active`` ``(K,)``; with a task also ``target_distance`` and
    ``success``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        config: EnvConfig | dict[str, Any] | None = None,
        image_size: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        if config is None:
            config = EnvConfig()
        elif isinstance(config, dict):
            config = from_dict(EnvConfig, config, "env config")
        if image_size is not None:
            config = replace(config, image_size=image_size)
        self.config = config
        self.render_mode = render_mode
        self.sim = PushSim(config)
        size = config.image_size
        ws = np.float32(config.workspace)
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (size, size, 3), np.uint8),
                "state": spaces.Box(-ws, ws, (2,), np.float32),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.task: Task | None = None
        self.active = np.zeros(self.sim.num_objects, dtype=bool)

    # ---------------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode: a given task, or a random layout drawn from ``self.np_random``."""
        super().reset(seed=seed)
        options = options or {}
        self.task = options.get("task")
        if self.task is not None:
            layout = self.task.layout
        else:
            lo, hi = self.config.num_objects
            n = options.get("num_objects") or int(self.np_random.integers(lo, hi + 1))
            layout = sample_layout(self.np_random, self.config, int(n))
        self._apply_layout(layout)
        return self._observation(), self._info()

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply one action; the episode never terminates by itself (TimeLimit truncates)."""
        self.sim.apply_action(action)
        info = self._info()
        reward = -info["target_distance"] if self.task is not None else 0.0
        return self._observation(), float(reward), False, False, info

    def render(self) -> np.ndarray | None:
        """The current frame, ``(H, W, 3)`` uint8, in ``rgb_array`` mode."""
        if self.render_mode == "rgb_array":
            return self.sim.render()
        return None

    def close(self) -> None:
        """Release the renderer."""
        self.sim.close()

    # ------------------------------------------------------------------------------ extras
    def goal_image(self, task: Task | None = None) -> np.ndarray:
        """Render the goal of ``task`` (default: the current one), leaving the live state as is.

        The target stands at its goal, distractors where they start, the pusher is hidden.

        Returns:
            ``(H, W, 3)`` uint8.
        """
        task = task or self.task
        if task is None:
            raise ValueError("no task: pass one, or reset with options={'task': ...}")
        saved = self.sim.get_state()
        xy = np.array(task.layout.object_xy)
        xy[task.target] = task.goal_xy
        self.sim.set_layout(
            np.array(task.layout.pusher_xy),
            xy,
            np.array(task.layout.object_yaw),
            np.array(task.layout.active),
        )
        image = self.sim.render(hide_pusher=True)
        self.sim.set_state(saved)
        return image

    def get_state(self) -> np.ndarray:
        """Raw simulator state ``(S,)`` float64 (see :meth:`PushSim.get_state`)."""
        return self.sim.get_state()

    def set_state(self, state: np.ndarray) -> None:
        """Restore a raw simulator state; the task and RNG are left as they are."""
        self.sim.set_state(state)

    def _apply_layout(self, layout: Layout) -> None:
        self.active = np.array(layout.active, dtype=bool)
        self.sim.set_layout(
            np.array(layout.pusher_xy),
            np.array(layout.object_xy),
            np.array(layout.object_yaw),
            self.active,
        )

    def _observation(self) -> dict[str, np.ndarray]:
        return {"image": self.sim.render(), "state": self.sim.pusher_xy.astype(np.float32)}

    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "pusher_pos": self.sim.pusher_xy,
            "object_pos": self.sim.object_pos,
            "active": self.active.copy(),
        }
        if self.task is not None:
            pos = info["object_pos"][self.task.target, :2]
            dist = float(np.linalg.norm(pos - np.asarray(self.task.goal_xy)))
            info["target_distance"] = dist
            info["success"] = dist < self.task.threshold
        return info

    # ---------------------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        # MuJoCo data and GL contexts do not pickle: keep what rebuilds them exactly.
        return {
            "config": self.config,
            "render_mode": self.render_mode,
            "sim_state": self.sim.get_state(),
            "np_random": self._np_random,
            "task": self.task,
            "active": self.active,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], render_mode=state["render_mode"])  # type: ignore[misc]
        self._np_random = state["np_random"]
        self.task = state["task"]
        self.active = state["active"]
        self.sim.set_state(state["sim_state"])
