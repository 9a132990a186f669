"""The exploration policy of ``foresight/Push-v0``: aimed pushes mixed with correlated noise.

Random actions alone rarely touch an object (the pusher is 2 pixels wide at 64x64 and the
objects cover a small part of the table), so a video model would learn little about pushing;
most segments of this policy walk the pusher behind an object and push it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PolicyConfig:
    """The exploration policy: aimed pushes mixed with temporally correlated noise.

    Attributes:
        push_prob: Probability that a new segment is an aimed push (else a noise segment).
        push_steps: Inclusive range of steps pushing through an object.
        noise_steps: Inclusive range of steps of a noise segment.
        noise_scale: Std of the noise added to aimed actions.
        correlation: AR(1) coefficient of the noise segments (0 = white noise).
        approach_timeout: Steps allowed to reach the start of an aimed push.
    """

    push_prob: float = 0.75
    push_steps: tuple[int, int] = (3, 8)
    noise_steps: tuple[int, int] = (3, 8)
    noise_scale: float = 0.2
    correlation: float = 0.8
    approach_timeout: int = 12


class InteractionPolicy:
    """Random but interaction-rich actions.

    Most segments walk the pusher behind a random object and push it in a random direction;
    the rest are temporally correlated random motion.

    Args:
        rng: The policy's only source of randomness.
        max_step: The env's metres per unit action.
        clearance: Distance from an object's centre at which a push starts (m).
        config: Policy parameters.
    """

    def __init__(
        self, rng: np.random.Generator, max_step: float, clearance: float, config: PolicyConfig
    ) -> None:
        self.rng = rng
        self.max_step = max_step
        self.clearance = clearance
        self.cfg = config
        self._mode = "noise"
        self._left = 0
        self._noise = np.zeros(2)
        self._target = 0
        self._dir = np.zeros(2)
        self._approach_left = 0

    def _new_segment(self, active: np.ndarray) -> None:
        cfg = self.cfg
        if self.rng.random() < cfg.push_prob and active.any():
            self._mode = "approach"
            self._target = int(self.rng.choice(np.flatnonzero(active)))
            angle = self.rng.uniform(-math.pi, math.pi)
            self._dir = np.array([math.cos(angle), math.sin(angle)])
            self._approach_left = cfg.approach_timeout
            self._left = int(self.rng.integers(cfg.push_steps[0], cfg.push_steps[1] + 1))
        else:
            self._mode = "noise"
            self._left = int(self.rng.integers(cfg.noise_steps[0], cfg.noise_steps[1] + 1))

    def __call__(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """Next action ``(2,)`` float32 in [-1, 1] from the pusher and object positions."""
        pusher_xy, object_pos, active = info["pusher_pos"], info["object_pos"], info["active"]
        if self._left <= 0:
            self._new_segment(active)
        cfg = self.cfg
        if self._mode == "approach":
            start = object_pos[self._target, :2] - self.clearance * self._dir
            delta = (start - pusher_xy) / self.max_step
            self._approach_left -= 1
            if np.linalg.norm(delta) * self.max_step < 0.015 or self._approach_left <= 0:
                self._mode = "push"
            action = delta / max(1.0, float(np.abs(delta).max()))
            action = action + cfg.noise_scale * self.rng.standard_normal(2)
        elif self._mode == "push":
            self._left -= 1
            action = self._dir * self.rng.uniform(0.5, 1.0)
            action = action + cfg.noise_scale * self.rng.standard_normal(2)
        else:
            self._left -= 1
            rho = cfg.correlation
            self._noise = rho * self._noise + math.sqrt(1 - rho**2) * self.rng.standard_normal(2)
            action = self._noise
        return np.clip(action, -1.0, 1.0).astype(np.float32)
