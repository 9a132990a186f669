"""The floor every model must beat: predict that nothing moves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from foresight.batch import FRAMES
from foresight.models.base import ModelConfig, VideoModel
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

    def rollout(
        self,
        context_frames: torch.Tensor,
        context_states: torch.Tensor,
        actions: torch.Tensor,
        num_samples: int = 1,
        decode_steps: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``(B, N, T', C, H, W)``: the last context frame, repeated."""
        t = self.future_length(context_frames, actions)
        steps = len(decode_steps) if decode_steps is not None else t
        last = context_frames[:, -1]  # (B, C, H, W)
        return last[:, None, None].expand(-1, num_samples, steps, -1, -1, -1)
