"""The one base class every video model implements, and the config fields all share.

A model is trained through :meth:`VideoModel.loss` and used (planning, evaluation) through
:meth:`VideoModel.rollout`. Shapes follow :mod:`foresight.batch`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import nn

from foresight.batch import ACTION_DIM, STATE_DIM


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the ``train:`` block of a model YAML).

    Attributes:
        batch_size: Sequences per step (per process under DDP).
        lr: Peak Adam learning rate.
        betas: Adam betas.
        weight_decay: Adam weight decay.
        warmup_steps: Linear LR warm-up from 0 to ``lr``.
        grad_clip: Max global gradient norm (0 disables clipping).
        max_steps: Training steps (``--max-steps`` overrides).
        log_every: Steps between ``metrics.jsonl`` lines.
        eval_every: Steps between validation passes (and checkpoints).
        eval_batches: Validation batches per pass.
        num_workers: DataLoader worker processes.
        seed: Seed of model init, data order and sampling.
        eval_samples: Futures sampled per validation sequence (scored as mean and best of N).
        amp: Mixed precision on CUDA (``bf16``, ``fp16`` with loss scaling, or ``off``);
            CPU always trains in float32.
    """

    batch_size: int = 16
    lr: float = 2e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 200
    grad_clip: float = 1.0
    max_steps: int = 5000
    log_every: int = 25
    eval_every: int = 500
    eval_batches: int = 4
    num_workers: int = 0
    seed: int = 0
    eval_samples: int = 3
    amp: Literal["off", "bf16", "fp16"] = "bf16"


@dataclass(frozen=True)
class PlanBudget:
    """The planner budget a model asks for (the ``plan:`` block of a model YAML).

    A slow model (e.g. one that samples pixel by pixel) plans with fewer candidates than the
    planner preset's; every planning result records the budget it used. ``None`` keeps the
    planner preset's value.

    Attributes:
        samples: Candidate action sequences per optimizer iteration.
        iterations: Optimizer iterations per planning step (CEM; MPPI ignores it).
        batch_size: Sequences per model ``rollout`` call.
        num_samples: Futures imagined per candidate by stochastic models.
    """

    samples: int | None = None
    iterations: int | None = None
    batch_size: int | None = None
    num_samples: int | None = None

    def __post_init__(self) -> None:
        for name in ("samples", "iterations", "batch_size", "num_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"plan.{name} must be at least 1, got {value}")


@dataclass(frozen=True)
class ModelConfig:
    """Fields every model config has; each model subclasses this with its own.

    Attributes:
        model: Registry name of the model (``svg_lp``, ``copy_last``, ...).
        image_size: Frames are resized to ``image_size`` at load.
        context_frames: Observed frames before the predicted ones.
        future_frames: Predicted frames per training window.
        eval_future_frames: Predicted frames in validation/evaluation rollouts.
        action_dim: Size of an action.
        state_dim: Size of the robot state.
        train: Optimisation settings.
        plan: Planner budget this model asks for (None fields: the planner preset's).
    """

    model: str
    image_size: int = 32
    context_frames: int = 2
    future_frames: int = 10
    eval_future_frames: int = 28
    action_dim: int = ACTION_DIM
    state_dim: int = STATE_DIM
    train: TrainConfig = field(default_factory=TrainConfig)
    plan: PlanBudget = field(default_factory=PlanBudget)

    @property
    def window(self) -> int:
        """Frames per training window: context + future."""
        return self.context_frames + self.future_frames


class VideoModel(nn.Module, ABC):
    """An action-conditioned video prediction model.

    Subclasses set ``config_class`` and are registered with
    :func:`foresight.models.registry.register_model`.

    Args:
        config: The model's config (an instance of ``config_class``).
    """

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    #: Registry name, set by ``register_model``.
    name: ClassVar[str] = ""
    #: False for models with no parameters to train (baselines); ``foresight train`` then
    #: only writes a checkpoint.
    trainable: ClassVar[bool] = True

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config

    @abstractmethod
    def loss(
        self, batch: dict[str, torch.Tensor], step: int | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss of one batch.

        Args:
            batch: ``frames`` ``(B, L, C, H, W)`` in [0, 1], ``states`` ``(B, L, S)``,
                ``actions`` ``(B, L-1, A)``, with ``L = config.window``.
            step: The trainer's optimisation step (steps already taken), which schedules such
                as KL warm-up read; None outside training (validation, tests), where
                schedules take their final value.

        Returns:
            The scalar loss to minimise, and its named terms as floats (for logging).
        """

    @abstractmethod
    def rollout(
        self,
        context_frames: torch.Tensor,
        context_states: torch.Tensor,
        actions: torch.Tensor,
        num_samples: int = 1,
        decode_steps: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Imagine the future frames that ``actions`` lead to, batched over samples.

        Args:
            context_frames: ``(B, Tc, C, H, W)`` observed frames in [0, 1].
            context_states: ``(B, Tc, S)`` robot states of those frames.
            actions: ``(B, Tc - 1 + T, A)``: the ``Tc - 1`` actions between the context frames,
                then the ``T`` actions to imagine; ``actions[:, t]`` acts on frame ``t``.
            num_samples: Futures drawn per sequence (stochastic models); no Python loop.
            decode_steps: Indices in ``[0, T)`` of the future frames to return (all if None);
                models may skip decoding the others, which planners exploit.
            generator: Source of all sampling randomness, for reproducible rollouts.

        Returns:
            ``(B, num_samples, len(decode_steps) or T, C, H, W)`` predicted frames in [0, 1].
        """

    @staticmethod
    def future_length(context_frames: torch.Tensor, actions: torch.Tensor) -> int:
        """Number of future frames ``T`` implied by the context and action lengths."""
        t = actions.shape[1] - (context_frames.shape[1] - 1)
        if t < 1:
            raise ValueError(
                f"actions must cover the {context_frames.shape[1] - 1} context transitions and at "
                f"least one future step, got {actions.shape[1]} actions"
            )
        return t
