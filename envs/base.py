"""The env contract: everything foresight asks of an environment, in one small class.

Collection, task suites, the oracle, costs and training reach an environment only through
:class:`ForesightEnv` (a gymnasium env with a few more methods), so a new environment is a
folder of its own (``envs/push/`` is the first) plus a ``register`` call, and nothing in the
pipeline changes. Like dm_control's Physics/Task split, the contract separates what simulates
(``get_state``/``set_state``/``simulate``/``render_image``, enough for the simulator to stand
in for a model: the oracle) from what judges (a task sampler, and a success test in simulator
coordinates reported through ``info``).

=====================  ==========================================================================
Contract item          What the env provides
=====================  ==========================================================================
observations           ``{"image": (H, W, 3) uint8, "state": (S,) float32 robot state}``
actions                ``(A,)`` float32 in [-1, 1] (bounded deltas of the robot's position)
``info``               always ``object_pos`` ``(K, 3)`` (what collection records and what
                       "the data moves objects" is measured on) and ``active`` ``(K,)`` bool;
                       with a task also ``success`` (bool) and ``target_distance`` (float,
                       simulator units)
state                  ``get_state() -> (N,) float64`` and ``set_state``, restoring bit-exactly
oracle                 ``simulate(action)`` steps without observing, ``render_image()`` renders
tasks                  ``task_distribution_class`` (a suite's ``tasks:`` block) and
                       ``sample_task(rng, config, distribution, task_id)``; a task has
                       ``task_id``; ``reset(options={"task": task})`` starts it
goal                   ``goal(task) -> Goal``: the goal image and what a cost may know
task kind (optional)   ``task_kind(config, task) -> str | None``: a short label of what a task
                       asks (e.g. the target's shape), so results break down by it
exploration            ``exploration_policy(rng, config) -> (obs, info) -> action`` for
                       ``foresight collect``, configured by ``policy_config_class``
scene (optional)       ``episode_scene()``: plain values of objects drawn for this episode
                       (recorded per episode by collection; None for a fixed scene), and
                       ``reset(options={"scene": scene})`` sets them again
=====================  ==========================================================================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import gymnasium as gym
import numpy as np

from foresight.config import from_dict

if TYPE_CHECKING:
    import torch

#: What an exploration policy is: ``(obs, info) -> (A,) float32`` action in [-1, 1].
ExplorationPolicy = Callable[[dict[str, np.ndarray], dict[str, Any]], np.ndarray]


@dataclass(frozen=True)
class PlanarKinematics:
    """Where actions put a position-controlled planar robot, and where that is in the image.

    The robot's state is its ``(x, y)``; an action of 1 along an axis moves it ``max_step``
    (until a contact stops it), and it stays within ``[-workspace, workspace]^2``. A top-down
    camera sees ``[-view_half_extent, view_half_extent]^2``, image columns growing with +x and
    rows with -y.

    Attributes:
        max_step: Displacement for an action of 1 along an axis (simulator units).
        workspace: Half-width of the square the robot stays in.
        view_half_extent: Half the width of the area the camera sees.
        image_size: Side of the frames a cost scores (pixels).
    """

    max_step: float
    workspace: float
    view_half_extent: float
    image_size: int

    def track(
        self, robot: torch.Tensor | None, action: np.ndarray | None, state: np.ndarray
    ) -> torch.Tensor:
        """The robot's kinematic state now, from what was observed (:meth:`commanded`'s start).

        Args:
            robot: The kinematic state this returned one step ago, or None at an episode's
                start.
            action: ``(A,)`` the action executed since (None at the start).
            state: ``(S,)`` the observed robot state now (the observation's ``state``).

        Returns:
            ``(2,)`` the robot's xy: a position-controlled robot is where it was observed.
        """
        del robot, action
        import torch

        return torch.as_tensor(np.asarray(state, dtype=np.float32)[:2])

    def commanded(self, start: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Commanded robot positions after each action (contacts ignored).

        Args:
            start: The robot's kinematic state now (from :meth:`track`); here ``(2,)`` xy.
            actions: ``(N, H, 2)`` candidate actions in [-1, 1].

        Returns:
            ``(N, H, 2)`` robot xy after each action, clipped to the workspace step by step
            as the walls do.
        """
        import torch

        xy = start[:2].to(actions).expand(actions.shape[0], 2)
        out = []
        for t in range(actions.shape[1]):
            xy = self.target(xy, actions[:, t])
            out.append(xy)
        return torch.stack(out, 1)

    def target(self, xy: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Where an action sends the robot from ``xy`` (``(..., 2)`` each), within the walls."""
        step = action.clamp(-1, 1) * self.max_step
        return (xy + step).clamp(-self.workspace, self.workspace)

    def to_image(self, xy: torch.Tensor) -> torch.Tensor:
        """Robot xy ``(..., 2)`` -> (row, col) in image widths (pixel ``i`` is at ``i / size``)."""
        import torch

        half, size = self.view_half_extent, self.image_size
        col = (xy[..., 0] + half) / (2 * half) - 0.5 / size
        row = (half - xy[..., 1]) / (2 * half) - 0.5 / size
        return torch.stack([row, col], -1)


@dataclass(frozen=True)
class PDKinematics(PlanarKinematics):
    """A planar robot that a PD controller drives towards a target set by each action.

    Push-T's agent (gym-pusht): an action sets the target ``max_step`` from the agent
    (clipped to the workspace), and ``substeps`` times per step the controller adds
    ``(k_p (target - p) - k_v v) dt`` to the velocity, then the agent moves ``v dt``. The agent
    is kinematic (contacts never push it back), so this is exact, but it lags: from rest it
    closes about a quarter of the way to its target in one step, and it coasts after. Its
    kinematic state is ``(x, y, vx, vy)``; the velocity is not observed, so :meth:`track`
    infers it from two observed positions and the action between them (the map is linear and
    its position row invertible), which needs no assumption about how the episode began.

    Attributes:
        k_p: Proportional gain (1/s^2).
        k_v: Derivative gain (1/s).
        substeps: Controller updates per action.
        dt: Seconds per update.
    """

    k_p: float = 100.0
    k_v: float = 20.0
    substeps: int = 10
    dt: float = 0.01

    def step_map(self) -> np.ndarray:
        """``(2, 3)``: one action's map of ``(p, v, target)`` to ``(p', v')``, per axis."""
        m = np.eye(3)
        for _ in range(self.substeps):
            p, v, target = m
            v = v + (self.k_p * (target - p) - self.k_v * v) * self.dt
            m = np.stack([p + v * self.dt, v, target])
        return m[:2]

    def track(
        self, robot: torch.Tensor | None, action: np.ndarray | None, state: np.ndarray
    ) -> torch.Tensor:
        """``(4,)`` xy and velocity now; see :meth:`PlanarKinematics.track`.

        At an episode's start the velocity is taken as 0 (every suite starts at rest); after
        each step it is solved from the previous and current positions and the action.
        """
        import torch

        xy = np.asarray(state, dtype=np.float64)[:2]
        if robot is None or action is None:
            return torch.as_tensor(np.concatenate([xy, np.zeros(2)]), dtype=torch.float32)
        (pp, pv, pt), (vp, vv, vt) = self.step_map()
        before = robot.double().numpy()[:2]
        target = self.target(torch.as_tensor(before), torch.as_tensor(action).double()).numpy()
        v_before = (xy - pp * before - pt * target) / pv
        v = vp * before + vv * v_before + vt * target
        return torch.as_tensor(np.concatenate([xy, v]), dtype=torch.float32)

    def commanded(self, start: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Where the controller takes the robot after each action.

        Args:
            start: ``(4,)`` xy and velocity now (from :meth:`track`).
            actions: ``(N, H, 2)`` candidate actions in [-1, 1].

        Returns:
            ``(N, H, 2)`` robot xy after each action.
        """
        import torch

        (pp, pv, pt), (vp, vv, vt) = self.step_map()
        n = actions.shape[0]
        xy = start[:2].to(actions).expand(n, 2)
        v = start[2:4].to(actions).expand(n, 2)
        out = []
        for t in range(actions.shape[1]):
            target = self.target(xy, actions[:, t])
            xy, v = pp * xy + pv * v + pt * target, vp * xy + vv * v + vt * target
            out.append(xy)
        return torch.stack(out, 1)


@dataclass(frozen=True)
class Goal:
    """What a cost may know about the goal of a task, as the env publishes it.

    Attributes:
        image: ``(H, W, 3)`` uint8 goal image (the target at its goal, the robot hidden).
        colors: ``(P, 3)`` float colours in [0, 1] of everything the camera can show, each
            as lit from above and as shaded (object sides).
        labels: ``(P,)`` int class of each colour (one class per distinct colour).
        target_label: Class of the object to move.
        robot_label: Class of the robot (the pusher).
        kinematics: Where actions put the robot (None: costs can only read it from frames).
        robot_goal: ``(2,)`` where the task wants the robot to end, (row, col) in image
            widths; None: the task does not judge the robot.
    """

    image: np.ndarray
    colors: np.ndarray
    labels: np.ndarray
    target_label: int
    robot_label: int
    kinematics: PlanarKinematics | None = None
    robot_goal: tuple[float, float] | None = None


class ForesightEnv(gym.Env[dict[str, np.ndarray], np.ndarray], ABC):
    """A gymnasium env that foresight can collect in, plan in, and judge tasks in.

    Subclasses take their config (an instance of ``config_class``, or a plain dict of its
    fields) as the first constructor argument and ``image_size`` as a keyword, and set
    ``self.config`` and ``self.task`` (the current task, None without one). See the module
    docstring for the whole contract.

    Attributes:
        config_class: The env's config dataclass; it has an ``image_size`` field.
        task_distribution_class: The dataclass of a suite's ``tasks:`` block for this env.
        policy_config_class: The dataclass configuring :meth:`exploration_policy`.
        default_config: The env preset (``configs/env/<name>.yaml``) used when only the env
            id is given.
    """

    config_class: ClassVar[type]
    task_distribution_class: ClassVar[type]
    policy_config_class: ClassVar[type]
    default_config: ClassVar[str]

    config: Any
    task: Any

    @classmethod
    def make_config(cls, config: Any = None, image_size: int | None = None) -> Any:
        """The env's typed config, with ``image_size`` swapped in if given.

        ``config`` is a ``config_class`` instance, a plain dict of its fields (checked like
        YAML), or None (the defaults).
        """
        if config is None:
            config = cls.config_class()
        elif isinstance(config, dict):
            config = from_dict(cls.config_class, config, "env config")
        return config if image_size is None else replace(config, image_size=image_size)

    @classmethod
    def task_kind(cls, config: Any, task: Any) -> str | None:
        """A short label of what ``task`` asks, e.g. the shape of the object to push.

        Planning runs record it per episode and count success per kind, so a suite that mixes
        kinds of task says which kind fails. None (the default): one kind of task.
        """
        return None

    def episode_scene(self) -> Any:
        """What this episode drew besides its state (e.g. its objects), as JSON-safe values.

        Collection records it per episode so a recorded state can be re-rendered, and the
        oracle sets it in its private env. None (the default): every episode shares the
        config's scene.
        """
        return None

    @abstractmethod
    def get_state(self) -> np.ndarray:
        """The full simulator state ``(N,)`` float64; :meth:`set_state` restores it exactly."""

    @abstractmethod
    def set_state(self, state: np.ndarray) -> None:
        """Restore a state from :meth:`get_state`; the task and RNG are left as they are."""

    @abstractmethod
    def simulate(self, action: np.ndarray) -> None:
        """Advance the simulator by one action without observing (the oracle's fast path)."""

    @abstractmethod
    def render_image(self) -> np.ndarray:
        """The camera frame of the current state, ``(H, W, 3)`` uint8."""

    @abstractmethod
    def goal(self, task: Any) -> Goal:
        """The goal of ``task`` (image and what a cost may know); the live state is kept."""

    @classmethod
    @abstractmethod
    def sample_task(cls, rng: np.random.Generator, config: Any, distribution: Any, task_id: int):
        """Draw one task of ``distribution`` (a ``task_distribution_class``) from ``rng``."""

    @abstractmethod
    def exploration_policy(self, rng: np.random.Generator, config: Any) -> ExplorationPolicy:
        """A fresh collection policy (``config``: a ``policy_config_class``) drawing on ``rng``."""
