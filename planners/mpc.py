"""The MPC loop: glue env + predictor + cost + optimizer, one episode at a time.

A :class:`Policy` turns observations into actions. :class:`MPCPolicy` is visual foresight:
every ``replan_every`` steps it asks the optimizer for the action sequence whose imagined
future (from its predictor) has the lowest cost, and executes its first actions. The
``random`` and ``zero`` baselines do not plan.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from foresight.envs.base import Goal
from foresight.planners.config import PlannerConfig
from foresight.planners.costs import COSTS, Cost, build_cost
from foresight.planners.optimizers import Optimizer, build_optimizer
from foresight.planners.predictors import Observation, Predictor


class Policy(ABC):
    """Chooses actions during an episode.

    Attributes:
        image_size: Frame size the policy needs from the env (None: the env's own).
        imagined: ``(H, W, 3)`` uint8, the final frame of the best imagined future of the
            latest plan (None for policies that do not imagine).
        plan_seconds: Wall time of each planning call so far this episode.
        model_seconds: Of that, the time spent in the predictor (the model).
    """

    image_size: int | None = None

    def __init__(self) -> None:
        self.imagined: np.ndarray | None = None
        self.plan_seconds: list[float] = []
        self.model_seconds = 0.0

    @abstractmethod
    def reset(
        self,
        env: Any,
        goal: Goal,
        obs: Observation,
        rng: np.random.Generator,
        steps: int | None = None,
    ) -> None:
        """Start an episode towards ``goal`` in ``env`` (a reset :class:`ForesightEnv`).

        ``steps``: the episode's length in actions, where it is fixed (None: unknown).
        """

    @abstractmethod
    def act(self, obs: Observation) -> np.ndarray:
        """The next action ``(A,)`` in [-1, 1]."""

    def observe(self, action: np.ndarray, obs: Observation) -> None:  # noqa: B027
        """Record that ``action`` led to ``obs`` (policies with memory override this)."""

    def close(self) -> None:  # noqa: B027
        """Release resources."""


class ZeroPolicy(Policy):
    """Baseline: never move (what success costs if the planner does nothing)."""

    def reset(
        self,
        env: Any,
        goal: Goal,
        obs: Observation,
        rng: np.random.Generator,
        steps: int | None = None,
    ) -> None:
        """Remember the action size."""
        self._dim = int(env.action_space.shape[0])
        self.plan_seconds = []

    def act(self, obs: Observation) -> np.ndarray:
        """Zeros."""
        start = time.perf_counter()
        action = np.zeros(self._dim, dtype=np.float32)
        self.plan_seconds.append(time.perf_counter() - start)
        return action


class RandomPolicy(Policy):
    """Baseline: uniformly random actions (what success costs without foresight)."""

    def reset(
        self,
        env: Any,
        goal: Goal,
        obs: Observation,
        rng: np.random.Generator,
        steps: int | None = None,
    ) -> None:
        """Take the episode's generator."""
        self._dim = int(env.action_space.shape[0])
        self._rng = rng
        self.plan_seconds = []

    def act(self, obs: Observation) -> np.ndarray:
        """Uniform in [-1, 1]."""
        start = time.perf_counter()
        action = self._rng.uniform(-1.0, 1.0, self._dim).astype(np.float32)
        self.plan_seconds.append(time.perf_counter() - start)
        return action


class MPCPolicy(Policy):
    """Visual-foresight MPC (Finn & Levine 2017; Ebert et al. 2018).

    Args:
        predictor: Imagines the futures of candidate sequences.
        config: Optimizer, horizon and cost.
        replan_every: Actions executed from each plan before replanning.
        device: Where the cost runs (the predictor's frames live there).
    """

    def __init__(
        self,
        predictor: Predictor,
        config: PlannerConfig,
        replan_every: int = 1,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        self.predictor = predictor
        self.config = config
        # A cost that cannot be built (e.g. missing LPIPS weights) fails now, not mid-episode.
        COSTS[config.cost.name].validate(config.cost)
        self.optimizer: Optimizer = build_optimizer(config.optimizer)
        self.replan_every = max(1, min(replan_every, config.horizon))
        self.device = device
        self.image_size = predictor.image_size
        self.cost: Cost | None = None

    def reset(
        self,
        env: Any,
        goal: Goal,
        obs: Observation,
        rng: np.random.Generator,
        steps: int | None = None,
    ) -> None:
        """Build the cost of ``goal``; forget the previous plan."""
        self.cost = build_cost(self.config.cost, goal, self.device, self.replan_every)
        self.predictor.reset(obs, int(rng.integers(2**31)))
        self._kinematics = goal.kinematics
        self._robot = self._track(None, None, obs)
        self._rng = rng
        self._dim = int(env.action_space.shape[0])
        self._plan: np.ndarray | None = None
        self._warm: np.ndarray | None = None
        self._next = 0
        self._left = steps if self.config.to_episode_end else None
        self._best_cost = float("inf")
        self._best_frame: torch.Tensor | None = None
        self.imagined = None
        self.plan_seconds = []
        self.model_seconds = 0.0

    def cost_fn(self, actions: np.ndarray) -> np.ndarray:
        """``(N, H, A) -> (N,)``: imagine, then score; remembers the best imagined future."""
        assert self.cost is not None
        h = actions.shape[1] if self._left is None else min(actions.shape[1], self._left)
        steps = self.cost.steps(h)
        frames = self.predictor.predict(actions, steps)  # (N, S, T', 3, H, W)
        costs = self.cost(
            frames,
            h,
            torch.as_tensor(actions, dtype=torch.float32),
            self._robot,
        )
        best = int(torch.argmin(costs))
        if float(costs[best]) < self._best_cost:
            self._best_cost = float(costs[best])
            self._best_frame = frames[best, 0, -1].clone()  # let the batch be freed
        return costs.double().cpu().numpy()

    def replan(self) -> None:
        """Optimize a new plan from the current state, warm-started from the last one."""
        start = time.perf_counter()
        model_before = self.predictor.model_seconds
        self._best_cost = float("inf")
        self._best_frame = None
        result = self.optimizer.optimize(
            self.cost_fn, self.config.horizon, self._dim, self._rng, init_mean=self._warm
        )
        k = self.replan_every
        self._plan = result.actions.astype(np.float32)
        self._warm = np.concatenate([result.mean[k:], np.zeros((k, self._dim))])
        self._next = 0
        if self._best_frame is not None:
            img = self._best_frame.clamp(0, 1).movedim(0, -1) * 255 + 0.5
            self.imagined = img.to(torch.uint8).cpu().numpy()
        self.plan_seconds.append(time.perf_counter() - start)
        self.model_seconds += self.predictor.model_seconds - model_before

    def act(self, obs: Observation) -> np.ndarray:
        """The next action of the current plan, replanning every ``replan_every`` steps."""
        if self._plan is None or self._next >= self.replan_every:
            self.replan()
        assert self._plan is not None
        action = self._plan[self._next]
        self._next += 1
        if self._left is not None:
            self._left = max(1, self._left - 1)
        return action

    def observe(self, action: np.ndarray, obs: Observation) -> None:
        """Pass the executed step on to the predictor."""
        self.predictor.observe(action, obs)
        self._robot = self._track(self._robot, action, obs)

    def _track(
        self, robot: torch.Tensor | None, action: np.ndarray | None, obs: Observation
    ) -> torch.Tensor | None:
        """The robot's kinematic state for the cost (None when the goal has no kinematics)."""
        if self._kinematics is None:
            return None
        return self._kinematics.track(robot, action, obs.state)

    def close(self) -> None:
        """Release the predictor."""
        self.predictor.close()


@dataclass
class EpisodeResult:
    """One planned episode.

    Attributes:
        task_id: Index of the task in its suite.
        success: Target within the task's threshold of its goal after the last step.
        ever_success: The task's success test held after some step (DINO-WM's Push-T number
            counts this: its planner stops once the test holds).
        final_distance: Target-to-goal distance after the last step (m).
        initial_distance: Target-to-goal distance at the start (m).
        steps: Actions executed.
        seconds_per_step: Mean wall time of a planning call.
        model_seconds_per_step: Of that, mean time inside the predictor.
        plans: Planning calls (one per ``replan_every`` steps; 0 for a policy that does not
            plan).
        frames: ``(T+1, H, W, 3)`` executed frames (not written to JSON).
        imagined: ``(T, H, W, 3)`` best imagined final frame at each step, or None.
        goal: ``(H, W, 3)`` goal image.
    """

    task_id: int
    success: bool
    ever_success: bool
    final_distance: float
    initial_distance: float
    steps: int
    seconds_per_step: float
    model_seconds_per_step: float
    plans: int
    frames: np.ndarray = field(repr=False)
    imagined: np.ndarray | None = field(repr=False)
    goal: np.ndarray = field(repr=False)

    def record(self) -> dict[str, Any]:
        """The JSON-able line of ``episodes.jsonl``."""
        return {
            "task_id": self.task_id,
            "success": self.success,
            "ever_success": self.ever_success,
            "final_distance": round(self.final_distance, 6),
            "initial_distance": round(self.initial_distance, 6),
            "steps": self.steps,
            "seconds_per_step": round(self.seconds_per_step, 6),
            "model_seconds_per_step": round(self.model_seconds_per_step, 6),
            "plans": self.plans,
        }


def observation(env: Any, obs: dict[str, np.ndarray]) -> Observation:
    """What the MPC loop sees of ``env`` after it returned the observation dict ``obs``."""
    return Observation(
        image=obs["image"],
        state=obs["state"],
        sim_state=env.get_state(),
        scene=env.episode_scene(),
    )


def run_episode(
    env: Any, policy: Policy, task: Any, steps: int, rng: np.random.Generator
) -> EpisodeResult:
    """Run ``policy`` on ``task`` for ``steps`` actions; success is judged after the last.

    Args:
        env: A :class:`~foresight.envs.ForesightEnv` rendering at ``policy.image_size``.
        policy: The policy (reset here).
        task: A task of that env (from its ``sample_task``).
        steps: Episode length in actions.
        rng: The episode's only source of randomness.
    """
    raw, info = env.reset(options={"task": task})
    obs = observation(env, raw)
    initial = float(info["target_distance"])
    goal = env.goal(task)
    policy.reset(env, goal, obs, rng, steps)
    frames = [obs.image]
    imagined: list[np.ndarray] = []
    ever = False
    for _ in range(steps):
        action = policy.act(obs)
        raw, _, _, _, info = env.step(action)
        ever = ever or bool(info["success"])
        obs = observation(env, raw)
        policy.observe(action, obs)
        frames.append(obs.image)
        if policy.imagined is not None:
            imagined.append(policy.imagined)
    times = policy.plan_seconds or [0.0]
    return EpisodeResult(
        task_id=int(task.task_id),
        success=bool(info["success"]),
        ever_success=ever,
        final_distance=float(info["target_distance"]),
        initial_distance=initial,
        steps=steps,
        seconds_per_step=float(np.mean(times)),
        model_seconds_per_step=policy.model_seconds / len(times),
        plans=len(policy.plan_seconds),
        frames=np.stack(frames),
        imagined=np.stack(imagined) if len(imagined) == steps else None,
        goal=goal.image,
    )
