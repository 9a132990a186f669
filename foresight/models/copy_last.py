"""The floor every model must beat: predict that nothing moves."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from foresight.batch import FRAMES
from foresight.models.base import ModelConfig, VideoModel, repeat_samples
from foresight.models.registry import register_model


@dataclass(frozen=True)
class CopyLastConfig(ModelConfig):
    """``copy_last`` has no settings of its own."""

    model: str = "copy_last"


@register_model("copy_last")
class CopyLast(VideoModel):
    """Repeats the last context frame for every future step, whatever the actions.

    A baseline, not a paper model: it bounds from below what pixel metrics and task success
    mean for a model that has learned nothing about the dynamics.
    """

    config_class = CopyLastConfig
    trainable = False

    def loss(
        self, batch: dict[str, torch.Tensor], step: int | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean squared error of the copied frame against the true futures (nothing to learn)."""
        frames = batch[FRAMES]
        c = self.config.context_frames
        pred = frames[:, c - 1 : c].expand_as(frames[:, c:])
        mse = torch.mean((pred - frames[:, c:]) ** 2)
        return mse, {"mse": float(mse)}

    def begin_rollout(
        self,
        context_frames: torch.Tensor,
        context_states: torch.Tensor,
        actions: torch.Tensor,
        num_samples: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """The last context frame ``(B * N, C, H, W)``: all a rollout needs."""
        return repeat_samples(context_frames[:, -1], num_samples)

    def imagine_step(
        self, state: torch.Tensor, k: int, generator: torch.Generator | None, feed_back: bool
    ) -> torch.Tensor:
        """The last context frame again, whatever the action."""
        return state
