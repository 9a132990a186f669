"""``foresight/Push-v0``: push coloured objects across a table with a planar pusher.

=================  ============================================================================
Observation        ``{"image": (H, W, 3) uint8, "state": (2,) float32 pusher xy (m)}``
Action             ``(2,)`` in [-1, 1], the pusher's Δxy in units of ``max_step`` metres
Reward             minus the target's distance to its goal when a task is set, else 0
Success            the target's centre within the task's ``threshold`` of its goal (m)
Collection policy  :class:`~foresight.envs.push.policy.InteractionPolicy`
=================  ============================================================================

With a scene distribution in the config (``configs/env/push_random.yaml``), every random
episode draws its objects first; :meth:`PushEnv.episode_scene` gives them as plain values, and
``reset(options={"scene": ...})`` sets them again (to re-render a recorded episode).

Randomness comes only from ``self.np_random``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from foresight.config import from_dict, to_dict
from foresight.envs.base import ExplorationPolicy, ForesightEnv, Goal, PlanarKinematics
from foresight.envs.push.policy import InteractionPolicy, PolicyConfig
from foresight.envs.push.scene import ObjectSpec, draw_scene
from foresight.envs.push.sim import WALL_GAP, PushConfig, PushSim
from foresight.envs.push.tasks import Layout, Task, TaskDistribution, sample_layout, sample_task


class PushEnv(ForesightEnv):
    """Tabletop pushing with a fixed top-down camera (foresight's own table).

    Args:
        config: Scene settings, as an :class:`PushConfig` or a plain dict of its fields.
        image_size: Overrides ``config.image_size``.
        render_mode: ``"rgb_array"`` or None.

    ``reset(options={"task": task})`` sets up a :class:`Task`; ``options={"num_objects": n}``
    a random layout with ``n`` objects; ``options={"scene": objects}`` (a list of
    :class:`ObjectSpec` or of their plain dicts) those objects. ``info`` always holds
    ``pusher_pos`` ``(2,)``, ``object_pos`` ``(K, 3)`` and ``active`` ``(K,)``; with a task
    also ``target_distance`` and ``success``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    config_class = PushConfig
    task_distribution_class = TaskDistribution
    policy_config_class = PolicyConfig
    default_config = "push"

    def __init__(
        self,
        config: PushConfig | dict[str, Any] | None = None,
        image_size: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.config = config = self.make_config(config, image_size)
        self.render_mode = render_mode
        # With a scene distribution the sim is rebuilt per episode; until then it holds a draw
        # from a fixed generator, so that spaces and state sizes exist before the first reset.
        self._drawn = config.scene is not None
        if self._drawn:
            config = config.with_objects(
                draw_scene(np.random.default_rng(0), config.scene, config.num_objects[1])
            )
        self.sim = PushSim(config)
        self._scene_plain = [to_dict(o) for o in config.objects]
        size = config.image_size
        # The pusher's servo may overshoot the workspace's edge; the walls bound where it can be.
        bound = np.float32(config.workspace + WALL_GAP)
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (size, size, 3), np.uint8),
                "state": spaces.Box(-bound, bound, (2,), np.float32),
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
        cfg = self.config
        if self.task is not None:
            self._use_scene(self.task.scene)
            layout = self.task.layout
        else:
            scene = options.get("scene")
            if scene is None and cfg.scene is not None:
                scene = draw_scene(self.np_random, cfg.scene, cfg.num_objects[1])
            self._use_scene(scene)
            lo, hi = cfg.num_objects
            hi = min(hi, self.sim.num_objects)
            n = options.get("num_objects") or int(self.np_random.integers(min(lo, hi), hi + 1))
            layout = sample_layout(self.np_random, self.sim.config, int(n))
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

    # ------------------------------------------------------------------------------ scenes
    @property
    def objects(self) -> tuple[ObjectSpec, ...]:
        """The objects of the current episode (the fixed ones, or this episode's draw)."""
        return self.sim.config.objects

    def episode_scene(self) -> list[dict[str, Any]] | None:
        """This episode's objects as plain values when they were drawn for it, else None."""
        return self._scene_plain if self._drawn else None

    def _use_scene(self, scene: Any) -> None:
        """Rebuild the sim around ``scene`` (None: the config's fixed objects) if it differs."""
        if scene is None:
            objects, drawn = self.config.objects, False
        else:
            objects = tuple(
                o if isinstance(o, ObjectSpec) else from_dict(ObjectSpec, o, "scene object")
                for o in scene
            )
            drawn = True
        self._drawn = drawn
        if objects != self.sim.config.objects:
            self.sim.close()
            self.sim = PushSim(self.config.with_objects(objects))
            self.active = np.zeros(self.sim.num_objects, dtype=bool)
        self._scene_plain = [to_dict(o) for o in objects]

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

    # ----------------------------------------------------------------------- the contract
    def simulate(self, action: np.ndarray) -> None:
        """Apply one action without rendering or observing (the oracle's step)."""
        self.sim.apply_action(action)

    def render_image(self) -> np.ndarray:
        """The top camera's frame of the current state, ``(H, W, 3)`` uint8."""
        return self.sim.render()

    @classmethod
    def sample_task(
        cls, rng: np.random.Generator, config: PushConfig, distribution: Any, task_id: int
    ) -> Task:
        """See :func:`foresight.envs.push.tasks.sample_task`."""
        return sample_task(rng, config, distribution, task_id)

    @classmethod
    def task_kind(cls, config: PushConfig, task: Task) -> str:
        """The target's shape (``box``, ``cylinder``, ``ell``, ...)."""
        objects = config.objects if task.scene is None else task.scene
        return objects[task.target].shape

    def goal(self, task: Task) -> Goal:
        """The goal of ``task``: its goal image and the scene's colour classes.

        Colours come from the MuJoCo model itself (geom RGBA under the headlight), so the
        colour masks follow any change to the scene.
        """
        model = self.sim.model
        light = model.vis.headlight
        top = float(light.ambient[0] + light.diffuse[0])
        side = float(light.ambient[0])
        names = [model.geom(i).name for i in range(model.ngeom)]
        rgb = np.asarray(model.geom_rgba[:, :3], dtype=np.float64)
        uniq, labels = np.unique(rgb.round(4), axis=0, return_inverse=True)
        labels = labels.reshape(-1)
        cfg = self.config
        image = self.goal_image(task)
        return Goal(
            image=image,
            colors=np.concatenate([uniq * top, uniq * side]).astype(np.float32),
            labels=np.concatenate([np.arange(len(uniq)), np.arange(len(uniq))]),
            target_label=int(labels[names.index(self.objects[task.target].name)]),
            robot_label=int(labels[names.index("pusher")]),
            kinematics=PlanarKinematics(
                cfg.max_step, cfg.workspace, cfg.view_half_extent, int(image.shape[0])
            ),
        )

    def exploration_policy(self, rng: np.random.Generator, config: Any) -> ExplorationPolicy:
        """Aimed pushes and correlated noise (:class:`InteractionPolicy`) drawing on ``rng``."""
        cfg = self.config
        clearance = max(o.radius for o in self.objects) + cfg.pusher_radius + 0.015
        return InteractionPolicy(rng, cfg.max_step, clearance, config)

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
            "objects": self.objects,
            "drawn": self._drawn,
            "sim_state": self.sim.get_state(),
            "np_random": self._np_random,
            "task": self.task,
            "active": self.active,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], render_mode=state["render_mode"])  # type: ignore[misc]
        self._np_random = state["np_random"]
        self._use_scene(state["objects"] if state["drawn"] else None)
        self.task = state["task"]
        self.active = state["active"]
        self.sim.set_state(state["sim_state"])
