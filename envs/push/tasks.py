"""Pushing tasks of ``foresight/Push-v0``: random layouts, task instances, task distributions.

A task is an initial layout plus a target object and its goal position; success means the
target ends within ``threshold`` metres of the goal (simulator coordinates). Suites draw task
``i`` with :func:`sample_task` from a generator seeded by ``(seed, i)``
(:func:`foresight.envs.sample_tasks`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from foresight.config import OMIT_IF_NONE
from foresight.envs.push.scene import ObjectSpec, SceneDistribution, draw_scene
from foresight.envs.push.sim import PushConfig
from foresight.errors import ConfigError


@dataclass(frozen=True)
class Layout:
    """Where everything starts.

    Attributes:
        pusher_xy: ``(2,)`` pusher centre.
        object_xy: ``(K, 2)`` object centres (entries of inactive objects are unused).
        object_yaw: ``(K,)`` rotation of each object about z (rad).
        active: ``(K,)`` bool, objects on the table.
    """

    pusher_xy: tuple[float, float]
    object_xy: tuple[tuple[float, float], ...]
    object_yaw: tuple[float, ...]
    active: tuple[bool, ...]


@dataclass(frozen=True)
class Task:
    """One task instance: push object ``target`` from its place in ``layout`` to ``goal_xy``.

    Attributes:
        task_id: Index within its suite.
        layout: Initial layout.
        target: Index of the object to push.
        goal_xy: ``(2,)`` goal centre of the target object.
        threshold: Success distance (m).
        scene: The objects of this task when they were drawn for it (a scene distribution in
            the suite or the env); None: the env's fixed objects.
    """

    task_id: int
    layout: Layout
    target: int
    goal_xy: tuple[float, float]
    threshold: float = 0.05
    scene: tuple[ObjectSpec, ...] | None = None


@dataclass(frozen=True)
class TaskDistribution:
    """How tasks are drawn.

    Attributes:
        num_objects: Inclusive range of objects on the table (the target plus distractors).
        goal_distance: Inclusive range of the target's distance to its goal (m).
        pusher_distance_min: Minimum initial distance of the pusher from the target (m).
        threshold: Success distance (m).
        scene: Draw each task's objects from this distribution (e.g. objects no training
            scene had); None: the env's own (its fixed objects, or its ``scene``).
    """

    num_objects: tuple[int, int] = (1, 1)
    goal_distance: tuple[float, float] = (0.10, 0.20)
    pusher_distance_min: float = 0.10
    threshold: float = 0.05
    scene: SceneDistribution | None = field(default=None, metadata=OMIT_IF_NONE)

    def __post_init__(self) -> None:
        lo, hi = self.num_objects
        if not 1 <= lo <= hi:
            raise ConfigError(
                f"'num_objects' must be 1 <= low <= high, got {list(self.num_objects)}"
            )
        lo_d, hi_d = self.goal_distance
        if not 0 < lo_d <= hi_d:
            raise ConfigError(
                f"'goal_distance' must be 0 < low <= high (m), got {list(self.goal_distance)}"
            )
        if self.pusher_distance_min < 0:
            raise ConfigError(
                f"'pusher_distance_min' must be >= 0 (m), got {self.pusher_distance_min}"
            )
        if self.threshold <= 0:
            raise ConfigError(f"'threshold' must be a positive distance (m), got {self.threshold}")


def sample_layout(rng: np.random.Generator, config: PushConfig, num_active: int) -> Layout:
    """Draw a random non-overlapping layout with ``num_active`` objects on the table.

    Args:
        rng: The only source of randomness.
        config: Scene settings (object sizes, spawn area, separation).
        num_active: Objects to place; which ones is drawn too.
    """
    k_all = len(config.objects)
    if not 1 <= num_active <= k_all:
        raise ConfigError(f"num_active must be in [1, {k_all}], got {num_active}")
    ext = config.spawn_extent
    for _ in range(1000):
        chosen = rng.choice(k_all, size=num_active, replace=False)
        xy = np.zeros((k_all, 2))
        placed: list[int] = []
        ok = True
        for k in chosen:
            for _ in range(100):
                p = rng.uniform(-ext, ext, size=2)
                if all(np.linalg.norm(p - xy[j]) >= config.min_separation for j in placed):
                    xy[k] = p
                    placed.append(int(k))
                    break
            else:
                ok = False
                break
        if not ok:
            continue
        lim = config.workspace - 0.01
        for _ in range(100):
            pusher = rng.uniform(-lim, lim, size=2)
            clear = config.pusher_radius + 0.015
            if all(
                np.linalg.norm(pusher - xy[k]) >= config.objects[k].radius + clear for k in placed
            ):
                break
        else:
            continue
        active = np.zeros(k_all, dtype=bool)
        active[placed] = True
        yaw = rng.uniform(-math.pi, math.pi, size=k_all)
        return Layout(
            pusher_xy=(float(pusher[0]), float(pusher[1])),
            object_xy=tuple((float(a), float(b)) for a, b in xy),
            object_yaw=tuple(float(v) for v in yaw),
            active=tuple(bool(v) for v in active),
        )
    raise ConfigError("could not place the objects without overlap; enlarge spawn_extent")


def sample_task(
    rng: np.random.Generator, config: PushConfig, dist: TaskDistribution, task_id: int = 0
) -> Task:
    """Draw one task: a layout, a target among the active objects, and a reachable goal.

    The goal lies inside the spawn area, at the drawn distance from the target's start and
    clear of the distractors; the pusher starts at least ``pusher_distance_min`` away. With a
    scene distribution (the task distribution's, else the env's), the task's
    ``num_objects[1]`` objects are drawn first.
    """
    lo, hi = dist.num_objects
    scene_dist = dist.scene or config.scene
    scene = None
    if scene_dist is not None:
        scene = draw_scene(rng, scene_dist, hi)
        config = config.with_objects(scene)
    elif not 1 <= lo <= hi <= len(config.objects):
        raise ConfigError(
            f"num_objects {[lo, hi]} must lie within [1, {len(config.objects)}] for this scene"
        )
    ext = config.spawn_extent
    for _ in range(1000):
        layout = sample_layout(rng, config, int(rng.integers(lo, hi + 1)))
        active = [k for k, a in enumerate(layout.active) if a]
        target = int(rng.choice(active))
        start = np.array(layout.object_xy[target])
        pusher = np.array(layout.pusher_xy)
        if np.linalg.norm(pusher - start) < dist.pusher_distance_min:
            continue
        for _ in range(50):
            d = rng.uniform(*dist.goal_distance)
            angle = rng.uniform(-math.pi, math.pi)
            goal = start + d * np.array([math.cos(angle), math.sin(angle)])
            if np.any(np.abs(goal) > ext):
                continue
            others = [np.array(layout.object_xy[k]) for k in active if k != target]
            if all(np.linalg.norm(goal - o) >= config.min_separation for o in others):
                return Task(
                    task_id=task_id,
                    layout=layout,
                    target=target,
                    goal_xy=(float(goal[0]), float(goal[1])),
                    threshold=dist.threshold,
                    scene=scene,
                )
    raise ConfigError("could not draw a task from this distribution; widen its ranges")
