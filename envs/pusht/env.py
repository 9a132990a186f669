"""``foresight/PushT-v0``: push a T-shaped block to a goal pose (Push-T of Diffusion Policy).

The physics, geometry, PD controller and drawing are gym-pusht's (``gym_pusht.envs.pusht``,
the package LeRobot and DINO-WM's Push-T derive from); this module maps them onto foresight's
env contract.

=================  ============================================================================
Observation        ``{"image": (H, W, 3) uint8, "state": (2,) float32 agent xy (m)}``
Action             ``(2,)`` in [-1, 1]: the agent's PD target is set ``max_step`` px from the
                   agent along the action (gym-pusht takes absolute targets in pixels)
Reward             minus the block's distance to its goal when a task is set, else 0
Success            the task's test (DINO-WM's by default: agent and block positions within
                   20 px jointly, block angle within π/9), in simulator pixels
Collection policy  aimed pushes at the T's centre of mass and correlated noise
=================  ============================================================================

Units: gym-pusht's table is 512 px, its y axis points down. foresight reads a pixel as a
millimetre and centres the table, y up (``x_m = (x - 256) / 1000``, ``y_m = (256 - y) /
1000``), so states, distances and costs have the same scale and orientation as Push-v0's
(a 51.2 cm table; image columns grow with +x, rows with -y).

Exactness: gym-pusht's own state reset cannot restore a running simulation (pymunk's contact
cache is not part of any state it exposes, and its ``reset_to_state`` sets the block's position
before its angle, which moves a T whose centre of mass is off its origin). So every step here
rebuilds the space from the 10-number state (agent x, y, vx, vy; block x, y, angle, vx, vy,
angular velocity) and runs gym-pusht's unchanged control loop: the state alone determines the
future, and ``set_state`` restores it bit-exactly (at ~0.8 ms a step instead of 0.4).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from foresight.envs.base import ExplorationPolicy, ForesightEnv, Goal, PDKinematics
from foresight.envs.pusht.tasks import MM, PushTTask, PushTTasks, sample_task
from foresight.errors import ConfigError

#: Side of gym-pusht's table in its pixels; a pixel is read as a millimetre.
TABLE = 512.0
#: Where gym-pusht's agent (a 15 px disc) can go: walls stand at 5 and 506 px, and the agent is
#: kinematic (walls do not stop it), so its target is kept inside.
AGENT_LOW, AGENT_HIGH = 22.0, 490.0
#: Off the table: where the goal outline and the hidden agent are drawn (not at all).
AWAY = (-10_000.0, -10_000.0)
#: Colours gym-pusht gives its shapes (pygame colour names), as RGB in [0, 1]. It draws each
#: shape's edge in its colour and fills it with :func:`fill_shade` of it.
COLORS = {
    "background": (1.0, 1.0, 1.0),
    "wall": (211 / 255, 211 / 255, 211 / 255),  # LightGray
    "block": (119 / 255, 136 / 255, 153 / 255),  # LightSlateGray
    "agent": (65 / 255, 105 / 255, 225 / 255),  # RoyalBlue
}


def fill_shade(color: tuple[float, float, float]) -> tuple[float, float, float]:
    """The shade gym-pusht fills a shape of ``color`` with: most of that shape's pixels.

    ``light_color`` of gym-pusht's ``pymunk_override``: 1.2x, clipped, rounded to 8 bits.
    """
    return tuple(round(min(1.2 * c * 255, 255.0)) / 255 for c in color)  # type: ignore[return-value]


def _load_gym_pusht() -> Any:
    # pygame greets on import unless told not to; a CLI's output is not the place.
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        from gym_pusht.envs.pusht import PushTEnv as GymPushT
    except ImportError as err:
        raise ConfigError(
            f"foresight/PushT-v0 needs gym-pusht ({err}); install it with pip install -e '.[pusht]'"
        ) from err
    return GymPushT


def to_metres(xy: np.ndarray) -> np.ndarray:
    """gym-pusht pixels ``(..., 2)`` -> foresight's centred, y-up metres."""
    xy = np.asarray(xy, dtype=np.float64)
    return np.stack([(xy[..., 0] - TABLE / 2) / MM, (TABLE / 2 - xy[..., 1]) / MM], -1)


@dataclass(frozen=True)
class PushTConfig:
    """Settings of ``foresight/PushT-v0`` (``configs/env/pusht.yaml``).

    Attributes:
        image_size: Rendered frames are ``image_size x image_size`` RGB (gym-pusht draws at
            512 px and resizes).
        max_step: Pixels between the agent and its PD target for an action of 1 along an
            axis. The PD controller closes about a third of that within a step from rest;
            held, an action of 1 moves the agent about ``max_step / 2`` px a step.
    """

    image_size: int = 64
    max_step: float = 40.0

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise ConfigError(f"image_size must be at least 8, got {self.image_size}")
        if not 0 < self.max_step <= 200:
            raise ConfigError(f"max_step must be in (0, 200] px, got {self.max_step}")


@dataclass(frozen=True)
class PushTPolicyConfig:
    """The exploration policy: aimed pushes at the block and correlated noise.

    Attributes:
        push_prob: Probability that a new segment is an aimed push (else noise).
        push_steps: Inclusive range of steps pushing through the block.
        noise_steps: Inclusive range of steps of a noise segment.
        noise_scale: Std of the noise added to aimed actions.
        correlation: AR(1) coefficient of the noise segments.
        approach_timeout: Steps allowed to reach the start of a push.
        clearance: Distance (m) from the block's centre of mass at which a push starts.
        aim_spread: Std (m) of the aim point around the centre of mass, so pushes also turn
            the T.
    """

    push_prob: float = 0.8
    push_steps: tuple[int, int] = (4, 10)
    noise_steps: tuple[int, int] = (2, 6)
    noise_scale: float = 0.2
    correlation: float = 0.8
    approach_timeout: int = 15
    clearance: float = 0.09
    aim_spread: float = 0.03


class PushTPolicy:
    """Aimed pushes through the T (approach a point behind it, push across) and noise.

    Args:
        rng: The policy's only source of randomness.
        max_step: Metres of PD target offset per unit action.
        config: Policy parameters.
    """

    def __init__(self, rng: np.random.Generator, max_step: float, config: PushTPolicyConfig):
        self.rng = rng
        self.max_step = max_step
        self.cfg = config
        self._mode = "noise"
        self._left = 0
        self._noise = np.zeros(2)
        self._dir = np.zeros(2)
        self._aim = np.zeros(2)
        self._approach_left = 0

    def __call__(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """Next action ``(2,)`` float32 in [-1, 1]."""
        cfg = self.cfg
        agent, cog = np.asarray(info["agent_pos"]), np.asarray(info["block_com"])
        if self._left <= 0:
            if self.rng.random() < cfg.push_prob:
                self._mode = "approach"
                angle = self.rng.uniform(-math.pi, math.pi)
                self._dir = np.array([math.cos(angle), math.sin(angle)])
                self._aim = self.rng.normal(0.0, cfg.aim_spread, 2)
                self._approach_left = cfg.approach_timeout
                self._left = int(self.rng.integers(cfg.push_steps[0], cfg.push_steps[1] + 1))
            else:
                self._mode = "noise"
                self._left = int(self.rng.integers(cfg.noise_steps[0], cfg.noise_steps[1] + 1))
        if self._mode == "approach":
            start = cog + self._aim - cfg.clearance * self._dir
            delta = (start - agent) / self.max_step
            self._approach_left -= 1
            if np.linalg.norm(start - agent) < 0.015 or self._approach_left <= 0:
                self._mode = "push"
            action = delta / max(1.0, float(np.abs(delta).max()))
            action = action + cfg.noise_scale * self.rng.standard_normal(2)
        elif self._mode == "push":
            self._left -= 1
            action = self._dir * self.rng.uniform(0.6, 1.0)
            action = action + cfg.noise_scale * self.rng.standard_normal(2)
        else:
            self._left -= 1
            rho = cfg.correlation
            self._noise = rho * self._noise + math.sqrt(1 - rho**2) * self.rng.standard_normal(2)
            action = self._noise
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class PushTEnv(ForesightEnv):
    """Push-T with a fixed top-down view, through foresight's env contract.

    Args:
        config: Settings, as a :class:`PushTConfig` or a plain dict of its fields.
        image_size: Overrides ``config.image_size``.
        render_mode: ``"rgb_array"`` or None.

    ``reset(options={"task": task})`` starts a :class:`PushTTask`. ``info`` always holds
    ``agent_pos`` ``(2,)``, ``block_com`` ``(2,)`` (the T's centre of mass), ``object_pos``
    ``(1, 3)`` (the block's origin and angle, m and rad, y up) and ``active``; with a task also
    ``target_distance`` (m) and ``success``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    config_class = PushTConfig
    task_distribution_class = PushTTasks
    policy_config_class = PushTPolicyConfig
    default_config = "pusht"

    def __init__(
        self,
        config: PushTConfig | dict[str, Any] | None = None,
        image_size: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.config = config = self.make_config(config, image_size)
        self.render_mode = render_mode
        size = config.image_size
        self.sim = _load_gym_pusht()(
            obs_type="state", observation_width=size, observation_height=size
        )
        half = np.float32(TABLE / 2 / MM)
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (size, size, 3), np.uint8),
                "state": spaces.Box(-half, half, (2,), np.float32),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.task: PushTTask | None = None
        self._state = np.zeros(10)
        self.set_state(self.random_state(np.random.default_rng(0)))

    # ---------------------------------------------------------------------------- physics
    @staticmethod
    def random_state(rng: np.random.Generator) -> np.ndarray:
        """A state drawn as gym-pusht's reset draws one (agent and block at rest)."""
        agent = rng.integers(50, 450, size=2).astype(np.float64)
        block = rng.integers(100, 400, size=2).astype(np.float64)
        angle = rng.uniform(-math.pi, math.pi)
        return np.array([*agent, 0.0, 0.0, *block, angle, 0.0, 0.0, 0.0])

    def _load(self, state: np.ndarray) -> None:
        """Rebuild gym-pusht's space holding exactly ``state`` (see the module docstring)."""
        sim = self.sim
        sim._setup()
        sim.goal_pose = np.array([*AWAY, 0.0])  # foresight's goals are the tasks', not fixed
        sim.agent.position = (float(state[0]), float(state[1]))
        sim.agent.velocity = (float(state[2]), float(state[3]))
        # Angle before position: the T turns about its centre of mass, off its origin.
        sim.block.angle = float(state[6])
        sim.block.position = (float(state[4]), float(state[5]))
        sim.block.velocity = (float(state[7]), float(state[8]))
        sim.block.angular_velocity = float(state[9])
        # Shapes cache their world geometry until the next step: refresh it, or a frame drawn
        # before any step would show gym-pusht's initial layout.
        sim.space.reindex_shapes_for_body(sim.agent)
        sim.space.reindex_shapes_for_body(sim.block)

    def _read(self) -> np.ndarray:
        a, b = self.sim.agent, self.sim.block
        return np.array(
            [*a.position, *a.velocity, *b.position, b.angle, *b.velocity, b.angular_velocity],
            dtype=np.float64,
        )

    def get_state(self) -> np.ndarray:
        """The 10-number state ``(10,)`` float64, in gym-pusht's pixels."""
        return self._state.copy()

    def set_state(self, state: np.ndarray) -> None:
        """Restore a state from :meth:`get_state` (exactly)."""
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (10,):
            raise ValueError(f"state must have shape (10,), got {state.shape}")
        self._state = state.copy()
        self._load(self._state)

    def simulate(self, action: np.ndarray) -> None:
        """One action: gym-pusht's 10 PD-controlled substeps towards the action's target."""
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0) * self.config.max_step
        agent = self._state[:2]
        # Foresight's +y is up; gym-pusht's is down.
        target = np.clip(agent + np.array([a[0], -a[1]]), AGENT_LOW, AGENT_HIGH)
        self._load(self._state)
        self.sim.step(target)
        self._state = self._read()

    def render_image(self) -> np.ndarray:
        """The frame of the current state, ``(H, W, 3)`` uint8 (no goal outline)."""
        return np.ascontiguousarray(self.sim._render())

    # ---------------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode: a given task's start, or a state drawn from ``self.np_random``."""
        super().reset(seed=seed)
        options = options or {}
        self.task = options.get("task")
        start = self.random_state(self.np_random) if self.task is None else self.task.start
        self.set_state(np.asarray(start, dtype=np.float64))
        return self._observation(), self._info()

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply one action; the episode never terminates by itself (TimeLimit truncates)."""
        self.simulate(action)
        info = self._info()
        reward = -info["target_distance"] if self.task is not None else 0.0
        return self._observation(), float(reward), False, False, info

    def render(self) -> np.ndarray | None:
        """The current frame, ``(H, W, 3)`` uint8, in ``rgb_array`` mode."""
        return self.render_image() if self.render_mode == "rgb_array" else None

    def _observation(self) -> dict[str, np.ndarray]:
        state = to_metres(self._state[:2]).astype(np.float32)
        return {"image": self.render_image(), "state": state}

    def _info(self) -> dict[str, Any]:
        s = self._state
        com = self.sim.block.local_to_world(self.sim.block.center_of_gravity)
        info: dict[str, Any] = {
            "agent_pos": to_metres(s[:2]),
            "block_com": to_metres(np.array(com)),
            "object_pos": np.array([[*to_metres(s[4:6]), -s[6]]]),
            "active": np.ones(1, dtype=bool),
        }
        if self.task is not None:
            info["target_distance"] = self.task.block_distance(s) / MM
            info["success"] = self.task.success(s)
        return info

    # ----------------------------------------------------------------------- the contract
    @classmethod
    def sample_task(
        cls, rng: np.random.Generator, config: PushTConfig, distribution: Any, task_id: int
    ) -> PushTTask:
        """See :func:`foresight.envs.pusht.tasks.sample_task`."""
        return sample_task(cls, rng, config, distribution, task_id)

    def goal(self, task: PushTTask) -> Goal:
        """The goal of ``task``: the block at its goal pose (the agent hidden), colour classes."""
        saved = self._state.copy()
        goal = np.array(saved)
        goal[:2] = AWAY
        goal[4:7] = task.goal_block
        self._load(goal)
        image = self.render_image()
        self._load(saved)
        # Both shades of every class: a palette of edge colours alone sees a shape's outline
        # and barely its fill, and the outline's share of a mask changes with the angle.
        shades = [
            (c, i) for i, base in enumerate(COLORS.values()) for c in (base, fill_shade(base))
        ]
        palette = np.array([c for c, _ in shades], dtype=np.float32)
        cfg = self.config
        robot_goal = None
        if task.include_agent:
            # (row, col) in image widths, as PDKinematics.to_image places the robot.
            x, y = np.asarray(task.goal_agent) / TABLE
            robot_goal = (float(y - 0.5 / image.shape[0]), float(x - 0.5 / image.shape[0]))
        return Goal(
            image=image,
            colors=palette,
            labels=np.array([label for _, label in shades]),
            target_label=list(COLORS).index("block"),
            robot_label=list(COLORS).index("agent"),
            # gym-pusht's controller; its gains and rates are its own, in any length unit.
            kinematics=PDKinematics(
                cfg.max_step / MM,
                (AGENT_HIGH - TABLE / 2) / MM,
                TABLE / 2 / MM,
                int(image.shape[0]),
                k_p=float(self.sim.k_p),
                k_v=float(self.sim.k_v),
                substeps=round(1 / (self.sim.dt * self.sim.control_hz)),
                dt=float(self.sim.dt),
            ),
            robot_goal=robot_goal,
        )

    def exploration_policy(self, rng: np.random.Generator, config: Any) -> ExplorationPolicy:
        """Aimed pushes through the T and correlated noise (:class:`PushTPolicy`)."""
        return PushTPolicy(rng, self.config.max_step / MM, config)

    # ---------------------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        # pymunk spaces do not pickle; the 10-number state rebuilds this one exactly.
        return {
            "config": self.config,
            "render_mode": self.render_mode,
            "state": self._state,
            "np_random": self._np_random,
            "task": self.task,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], render_mode=state["render_mode"])  # type: ignore[misc]
        self._np_random = state["np_random"]
        self.task = state["task"]
        self.set_state(state["state"])
