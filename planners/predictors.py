"""Predictors: what imagines the future frames of candidate action sequences.

* :class:`OraclePredictor`: the simulator itself (restore the true state, replay each
  sequence, render only the frames the cost reads) — the upper bound of every model.
* :class:`ModelPredictor`: any trained :class:`~foresight.models.VideoModel`, all candidates
  in one batched ``rollout`` (chunked when memory asks).

Both keep their own view of the episode so far through :meth:`Predictor.reset` and
:meth:`Predictor.observe`, and answer :meth:`Predictor.predict`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from foresight.data.dataset import stored_span
from foresight.planners.costs import frames_to_tensor

if TYPE_CHECKING:
    from foresight.envs import EnvSpec


@dataclass(frozen=True)
class Observation:
    """What the MPC loop sees after each step.

    Attributes:
        image: ``(H, W, 3)`` uint8 camera frame.
        state: ``(S,)`` float32 robot state (the env's ``state`` observation).
        sim_state: ``(N,)`` float64 full simulator state (only the oracle reads it).
        scene: What the env drew for this episode besides the state (its
            ``episode_scene()``, e.g. the objects), which the state needs to mean anything.
    """

    image: np.ndarray
    state: np.ndarray
    sim_state: np.ndarray
    scene: Any = None


class Predictor(ABC):
    """Imagines frames for a batch of action sequences from the current episode state.

    Attributes:
        image_size: Frame size the predictor works at; the env renders at this size.
        model_seconds: Wall time spent inside :meth:`predict` since construction.
    """

    image_size: int

    def __init__(self) -> None:
        self.model_seconds = 0.0

    @abstractmethod
    def reset(self, obs: Observation, seed: int) -> None:
        """Start an episode at ``obs``; ``seed`` seeds any sampling."""

    @abstractmethod
    def observe(self, action: np.ndarray, obs: Observation) -> None:
        """Record that ``action`` ``(A,)`` was executed and led to ``obs``."""

    def predict(self, actions: np.ndarray, steps: list[int]) -> torch.Tensor:
        """Imagine the futures of ``actions``.

        Args:
            actions: ``(N, H, A)`` candidate sequences in [-1, 1].
            steps: Indices in ``[0, H)`` of the future frames wanted.

        Returns:
            ``(N, S, len(steps), 3, H_img, W_img)`` float frames in [0, 1].
        """
        start = time.perf_counter()
        try:
            return self._predict(actions, steps)
        finally:
            self.model_seconds += time.perf_counter() - start

    @abstractmethod
    def _predict(self, actions: np.ndarray, steps: list[int]) -> torch.Tensor:
        """:meth:`predict` without the timing."""

    def close(self) -> None:  # noqa: B027  (optional hook; most predictors hold nothing)
        """Release resources."""


class OraclePredictor(Predictor):
    """The simulator as the model: true dynamics, same cost (the planning upper bound).

    Args:
        env: The env the episodes run in (an :class:`~foresight.envs.EnvSpec`); the oracle
            builds a private instance of it and drives it through the env contract
            (``set_state``, ``simulate``, ``render_image``).
    """

    def __init__(self, env: EnvSpec) -> None:
        super().__init__()
        self.env = env.make()
        self.image_size = env.image_size
        self._state: np.ndarray | None = None
        self._scene: Any = None

    def reset(self, obs: Observation, seed: int) -> None:
        """See :meth:`Predictor.reset` (the oracle is deterministic; ``seed`` is unused)."""
        if obs.scene != self._scene:
            # The private env must hold the episode's objects before it can take its states.
            self.env.reset(options=None if obs.scene is None else {"scene": obs.scene})
            self._scene = obs.scene
        self._state = obs.sim_state.copy()

    def observe(self, action: np.ndarray, obs: Observation) -> None:
        """See :meth:`Predictor.observe`."""
        self._state = obs.sim_state.copy()

    def _predict(self, actions: np.ndarray, steps: list[int]) -> torch.Tensor:
        if self._state is None:
            raise RuntimeError("reset() the predictor before predict()")
        n, h, _ = actions.shape
        wanted = set(steps)
        last = max(steps)
        size = self.image_size
        out = np.empty((n, len(steps), size, size, 3), np.uint8)
        for i in range(n):
            self.env.set_state(self._state)
            k = 0
            # Steps past the last wanted frame cannot change the cost: skip simulating them.
            for t in range(last + 1):
                self.env.simulate(actions[i, t])
                if t in wanted:
                    out[i, k] = self.env.render_image()
                    k += 1
        return frames_to_tensor(out)[:, None]

    def close(self) -> None:
        """Release the renderer."""
        self.env.close()


class ModelPredictor(Predictor):
    """A trained video model as the predictor.

    Keeps the episode's frames, states and actions so the model always gets its
    ``context_frames`` of history; before enough steps exist, the first frame is repeated
    with zero actions (the pusher at rest). A model with ``frame_skip`` ``k`` sees every
    ``k``-th frame of that history and imagines one frame per ``k`` env steps: a candidate's
    env actions are grouped ``k`` at a time (the last group padded with zeros), and a wanted
    env step is read from the first imagined frame at or after it.

    Args:
        model: A :class:`~foresight.models.VideoModel` in eval mode, on ``device``.
        num_samples: Futures sampled per sequence (stochastic models); costs average them.
        batch_size: Sequences per ``rollout`` call; halved automatically on CUDA OOM.
        device: Where the model runs.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        num_samples: int = 1,
        batch_size: int = 200,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        self.model = model
        cfg = model.config  # type: ignore[attr-defined]
        self.image_size = int(cfg.image_size)
        self.context = int(cfg.context_frames)
        self.skip = int(cfg.frame_skip)
        self.env_action_dim = int(cfg.env_action_dim)
        #: Env frames of history the context reads.
        self.history = stored_span(self.context, self.skip)
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.generator: torch.Generator | None = None
        self._frames: list[torch.Tensor] = []
        self._states: list[torch.Tensor] = []
        self._actions: list[torch.Tensor] = []

    def reset(self, obs: Observation, seed: int) -> None:
        """See :meth:`Predictor.reset`."""
        self.generator = torch.Generator(self.device)
        self.generator.manual_seed(seed)
        self._frames = [frames_to_tensor(obs.image, self.device)]
        self._states = [torch.as_tensor(obs.state, dtype=torch.float32, device=self.device)]
        self._actions = []

    def observe(self, action: np.ndarray, obs: Observation) -> None:
        """See :meth:`Predictor.observe`."""
        self._actions.append(torch.as_tensor(action, dtype=torch.float32, device=self.device))
        self._frames.append(frames_to_tensor(obs.image, self.device))
        self._states.append(torch.as_tensor(obs.state, dtype=torch.float32, device=self.device))
        # Only the last context window is ever read.
        keep = self.history
        self._frames, self._states = self._frames[-keep:], self._states[-keep:]
        self._actions = self._actions[-(keep - 1) :] if keep > 1 else []

    def context_window(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The last ``Tc`` frames ``(Tc, 3, H, W)``, states ``(Tc, S)``, actions ``(Tc-1, A)``.

        With ``frame_skip`` ``k``, frames ``k`` env steps apart and the ``k`` env actions
        between two of them concatenated (``A = k * env actions``).
        """
        pad = self.history - len(self._frames)
        frames = ([self._frames[0]] * pad + self._frames)[:: self.skip]
        states = ([self._states[0]] * pad + self._states)[:: self.skip]
        zero = torch.zeros(self.env_action_dim, device=self.device)
        actions = [zero] * (self.history - 1 - len(self._actions)) + self._actions
        if actions:
            act = torch.stack(actions).reshape(self.context - 1, -1)
        else:
            act = torch.zeros(0, self.env_action_dim * self.skip, device=self.device)
        return torch.stack(frames), torch.stack(states), act

    def model_steps(self, steps: list[int]) -> tuple[list[int], list[int]]:
        """Imagined frames to decode for env ``steps``, and where each step reads from them.

        Env step ``t`` (the frame after action ``t``) is imagined frame ``ceil((t + 1) / k)
        - 1``: exact where ``t + 1`` is a multiple of ``k``, else the first frame after it.
        """
        wanted = [-(-(t + 1) // self.skip) - 1 for t in steps]
        decode = sorted(set(wanted))
        return decode, [decode.index(m) for m in wanted]

    @torch.no_grad()
    def _predict(self, actions: np.ndarray, steps: list[int]) -> torch.Tensor:
        frames, states, past = self.context_window()
        cand = torch.as_tensor(actions, dtype=torch.float32, device=self.device)
        n, h, a = cand.shape
        if h % self.skip:
            # A last group shorter than frame_skip: the pusher at rest for the rest of it.
            cand = torch.cat([cand, cand.new_zeros(n, self.skip - h % self.skip, a)], dim=1)
        cand = cand.reshape(n, -1, a * self.skip)
        decode, pick = self.model_steps(steps)
        out: list[torch.Tensor] = []
        start = 0
        while start < n:
            b = min(self.batch_size, n - start)
            chunk = cand[start : start + b]
            try:
                pred = self.model.rollout(  # type: ignore[operator]
                    frames[None].expand(b, *frames.shape),
                    states[None].expand(b, *states.shape),
                    torch.cat([past[None].expand(b, *past.shape), chunk], dim=1),
                    num_samples=self.num_samples,
                    decode_steps=decode,
                    generator=self.generator,
                )
            except torch.cuda.OutOfMemoryError:
                if self.batch_size == 1:
                    raise
                # Memory asks for smaller chunks: halve and retry this chunk.
                self.batch_size = max(1, self.batch_size // 2)
                torch.cuda.empty_cache()
                continue
            out.append(pred.float())
            start += b
        pred = torch.cat(out)
        return pred if pick == list(range(len(decode))) else pred[:, :, pick]
