"""The one base class every video model implements, and the config fields all share.

A model is trained through :meth:`VideoModel.loss` and used (planning, evaluation) through
:meth:`VideoModel.rollout`, which a model implements as :meth:`VideoModel.begin_rollout` (the
context encoded) and :meth:`VideoModel.imagine_step` (one imagined frame). Shapes follow
:mod:`foresight.batch`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import nn

from foresight.batch import ACTION_DIM, STATE_DIM
from foresight.config import check_seed


class StepOptimizer(Protocol):
    """What :meth:`VideoModel.train_step` may use of the trainer, and all it may.

    The trainer's :class:`foresight.training.optim.Optimization` is one; the model side
    depends on this protocol only, never on :mod:`foresight.training`.
    """

    #: The optimisation step being run (0-based), for schedules such as KL warm-up.
    step: int

    def autocast(self) -> AbstractContextManager:
        """The precision context every forward pass of the step runs under."""
        ...

    def backward_step(self, name: str, loss: torch.Tensor) -> float:
        """Backward ``loss`` and step the optimizer ``name``; the loss averaged over ranks."""
        ...


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the ``train:`` block of a model YAML).

    Attributes:
        batch_size: Sequences per optimisation step, in total: under torchrun each of the N
            processes takes ``batch_size / N`` of them (N must divide it), so a preset trains
            at the same batch and learning rate on any number of GPUs.
        lr: Peak Adam learning rate.
        betas: Adam betas.
        weight_decay: Adam weight decay.
        warmup_steps: Linear LR warm-up from 0 to ``lr``.
        decay_steps: Steps, counted from the end of warm-up, over which the learning rate
            falls on a half cosine from ``lr`` to ``lr * final_lr_ratio``, and stays there;
            0 keeps it constant. A count of steps rather than ``max_steps``, so a run
            extended with ``--resume --max-steps`` still continues exactly as a longer run,
            and one stopped by ``--time-limit`` decays on the same schedule on any machine:
            set it to about the steps the time buys (``benchmarks/train_speed.py``).
        final_lr_ratio: Where the decay ends, as a fraction of ``lr`` (0 to 1).
        grad_clip: Max global gradient norm (0 disables clipping).
        max_steps: Training steps (``--max-steps`` overrides).
        log_every: Steps between ``metrics.jsonl`` lines.
        log: Where those lines also go: ``jsonl`` (always written), ``tensorboard``,
            ``wandb`` (optional extras; see :mod:`foresight.training.tracking`).
        eval_every: Steps between validation passes (and checkpoints).
        eval_batches: Validation batches per pass.
        num_workers: DataLoader worker processes.
        data_memory_gb: Hold the train split in memory (uint8 frames, read once) when it
            takes at most this many GiB per process, and cut windows there; a larger split
            is read window by window from the file. Items are identical either way.
        seed: Seed of model init, data order and sampling.
        eval_samples: Futures sampled per validation sequence (scored as mean and best of N).
        amp: Mixed precision on CUDA (``bf16``, ``fp16`` with loss scaling, or ``off``);
            CPU always trains in float32.
        eval_rollout: Validation rolls out ``eval_samples`` futures of
            ``eval_future_frames`` frames and scores PSNR/SSIM per step. Off for models
            whose sampling is too slow to run at every validation; the cheap measures of
            :meth:`VideoModel.validation_step` (the loss, a likelihood) are always logged.
        best_metric: Validation measure that picks ``best.pt`` (a key of the ``valid``
            records in ``metrics.jsonl``: ``ssim_mean``, ``psnr_best``, ``loss``, ...).
        best_mode: ``max`` if a higher ``best_metric`` is better, ``min`` if lower.
        deterministic: On CUDA, use only deterministic kernels (torch deterministic
            algorithms, cuDNN without autotuning or TF32, ``CUBLAS_WORKSPACE_CONFIG``), so a
            run and its ``--resume`` repeat to the bit, at some speed; off, cuDNN autotunes
            and matmuls may use TF32. CPU training is deterministic either way.
        channels_last: Train with 4-D weights (and so the activations convolutions make) in
            channels-last memory layout. A speed choice measured per preset: on 2 CPU cores
            it makes ``vrnn_fast``'s step ~1.3x faster and ``gan``'s slower
            (``benchmarks/train_speed.py``); results agree with the default layout to float
            rounding. A loaded checkpoint plans and evaluates in the same layout.
    """

    batch_size: int = 16
    lr: float = 2e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 200
    decay_steps: int = 0
    final_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    max_steps: int = 5000
    log_every: int = 25
    log: tuple[str, ...] = ("jsonl",)
    eval_every: int = 500
    eval_batches: int = 4
    num_workers: int = 0
    data_memory_gb: float = 4.0
    seed: int = 0
    eval_samples: int = 3
    amp: Literal["off", "bf16", "fp16"] = "bf16"
    eval_rollout: bool = True
    best_metric: str = "ssim_mean"
    best_mode: Literal["max", "min"] = "max"
    deterministic: bool = False
    channels_last: bool = False

    def __post_init__(self) -> None:
        # Each bad value would otherwise surface deep in training as a traceback (a zero
        # modulus, an empty batch) or as a NaN loss blamed on the learning rate.
        for name in ("batch_size", "max_steps", "log_every", "eval_every", "eval_batches"):
            _check_int(f"train.{name}", getattr(self, name), 1)
        _check_int("train.eval_samples", self.eval_samples, 1)
        for name in ("warmup_steps", "decay_steps", "num_workers"):
            _check_int(f"train.{name}", getattr(self, name), 0)
        check_seed(self.seed, "train.seed")
        _check_float("train.lr", self.lr, positive=True)
        for name in ("weight_decay", "grad_clip", "data_memory_gb"):
            _check_float(f"train.{name}", getattr(self, name))
        if not (_is_number(self.final_lr_ratio) and 0.0 <= self.final_lr_ratio <= 1.0):
            raise ValueError(
                f"train.final_lr_ratio must be a number in [0, 1], got {self.final_lr_ratio!r}"
            )
        if len(self.betas) != 2 or not all(_is_number(b) and 0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"train.betas must be two numbers in [0, 1), got {list(self.betas)}")
        if not isinstance(self.best_metric, str) or not self.best_metric:
            raise ValueError(
                f"train.best_metric must name a validation measure, got {self.best_metric!r}"
            )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value: object, minimum: int) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is an integer of at least ``minimum``."""
    if _is_int(value) and value >= minimum:  # type: ignore[operator]
        return
    what = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
    raise ValueError(f"{name} must be {what}, got {value!r}")


def _check_float(name: str, value: object, positive: bool = False) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is a finite number >= 0 (> 0)."""
    if _is_number(value) and (value > 0 if positive else value >= 0):  # type: ignore[operator]
        return
    what = "a positive finite number" if positive else "a finite number of at least 0"
    raise ValueError(f"{name} must be {what}, got {value!r}")


def warmup_factor(step: int | None, warmup_steps: int) -> float:
    """Linear ramp ``(step + 1) / warmup_steps`` up to 1, for LR and KL-weight warm-ups.

    Args:
        step: The trainer's optimisation step (0-based); None (outside training) gives 1.
        warmup_steps: Steps of the ramp (0 or less: no ramp).
    """
    if step is None or warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return (step + 1) / warmup_steps


def cosine_factor(step: int, decay_steps: int, final_ratio: float) -> float:
    """Half-cosine fall from 1 at ``step`` 0 to ``final_ratio`` at ``decay_steps``, held after.

    Args:
        step: Steps since the decay began (negative: not begun, 1).
        decay_steps: Length of the fall (0 or less: no decay, always 1).
        final_ratio: The factor at and after ``decay_steps``.
    """
    if decay_steps <= 0 or step <= 0:
        return 1.0
    progress = min(step / decay_steps, 1.0)
    return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class OptimizerSpec:
    """One optimizer a model trains with, and how the trainer drives it.

    Attributes:
        optimizer: The torch optimizer over the parameters it updates.
        lr: Peak learning rate.
        warmup_steps: Linear warm-up from ``lr / warmup_steps`` to ``lr``.
        grad_clip: Max global gradient norm of its parameters (0 disables clipping).
        decay_steps: Half-cosine decay after warm-up over this many steps (0: constant).
        final_lr_ratio: The decay's end, as a fraction of ``lr``.
    """

    optimizer: torch.optim.Optimizer
    lr: float
    warmup_steps: int = 0
    grad_clip: float = 0.0
    decay_steps: int = 0
    final_lr_ratio: float = 0.1

    @classmethod
    def from_train(
        cls, optimizer: torch.optim.Optimizer, train: TrainConfig, **changes: Any
    ) -> OptimizerSpec:
        """The spec ``train`` sets (rate, warm-up, clipping, decay), with ``changes`` applied.

        Args:
            optimizer: The torch optimizer.
            train: The model's ``train:`` settings.
            **changes: Fields that differ for this optimizer (e.g. a discriminator's ``lr``).
        """
        spec = cls(
            optimizer,
            lr=train.lr,
            warmup_steps=train.warmup_steps,
            grad_clip=train.grad_clip,
            decay_steps=train.decay_steps,
            final_lr_ratio=train.final_lr_ratio,
        )
        return replace(spec, **changes)

    def lr_at(self, step: int) -> float:
        """Learning rate of optimisation step ``step`` (0-based); override for other schedules.

        A function of the step alone (warm-up, then the decay or constant), so a run extended
        with ``--resume --max-steps`` continues exactly as a longer run would have.
        """
        decay = cosine_factor(step - self.warmup_steps, self.decay_steps, self.final_lr_ratio)
        return self.lr * warmup_factor(step, self.warmup_steps) * decay

    @property
    def params(self) -> list[nn.Parameter]:
        """Every parameter this optimizer updates."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]


@dataclass(frozen=True)
class PlanBudget:
    """The planner budget a model asks for (the ``plan:`` block of a model YAML).

    A slow model (e.g. one that samples pixel by pixel) plans with fewer candidates than the
    planner preset's; every planning result records the budget it used. ``None`` keeps the
    planner preset's value.

    Attributes:
        samples: Candidate action sequences per optimizer iteration.
        iterations: Optimizer iterations per planning step.
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
        action_dim: Size of an action: the env's action size times ``frame_skip``.
        state_dim: Size of the robot state.
        frame_skip: Env steps per model step (DINO-WM's frameskip). The model sees every
            ``frame_skip``-th frame, and as one action the ``frame_skip`` env actions between
            two of them, concatenated; so a horizon of ``H`` env steps costs ``H / frame_skip``
            imagined frames, and a window of ``W`` frames spans ``(W - 1) * frame_skip + 1``
            env frames.
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
    frame_skip: int = 1
    train: TrainConfig = field(default_factory=TrainConfig)
    plan: PlanBudget = field(default_factory=PlanBudget)

    def __post_init__(self) -> None:
        """Check the fields every model shares; a model's config calls it first from its own."""
        for name in ("image_size", "context_frames", "future_frames", "eval_future_frames"):
            _check_int(name, getattr(self, name), 1)
        for name in ("action_dim", "state_dim", "frame_skip"):
            _check_int(name, getattr(self, name), 1)
        if self.action_dim % self.frame_skip:
            raise ValueError(
                f"action_dim {self.action_dim} is not a multiple of frame_skip "
                f"{self.frame_skip}; set action_dim to the env's action size times frame_skip"
            )

    @property
    def window(self) -> int:
        """Frames per training window: context + future."""
        return self.context_frames + self.future_frames

    @property
    def env_action_dim(self) -> int:
        """Size of one env action (``action_dim / frame_skip``)."""
        return self.action_dim // self.frame_skip


def repeat_samples(x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """``(B, ...)`` -> ``(B * N, ...)``, sample-minor: row ``b * N + n`` is sample ``n`` of b."""
    return x.repeat_interleave(num_samples, dim=0)


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
    #: dtype of ``frames`` in the batches given to :meth:`loss`, :meth:`train_step` and
    #: :meth:`validation_step`: ``torch.float32`` in [0, 1], or ``torch.uint8`` (exact 8-bit
    #: intensities, for models with a softmax over them). :meth:`rollout` always takes and
    #: returns float frames in [0, 1].
    frame_dtype: ClassVar[torch.dtype] = torch.float32

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config

    def use_memory_format(self) -> VideoModel:
        """Lay out 4-D weights as ``config.train.channels_last`` asks, in place; returns self.

        In place, so the parameters stay the objects optimizers were built over. Training and
        every loaded model (planning, evaluation) run in the same layout: for ``vrnn_fast`` at
        64x64 on one CPU thread, channels-last makes a 40-future, 10-frame planning rollout
        1.3x faster, as it does a training step.
        """
        if self.config.train.channels_last:
            self.to(memory_format=torch.channels_last)
        return self

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

    def optimizers(self) -> dict[str, OptimizerSpec]:
        """The optimizers :meth:`train_step` steps, by name.

        The default is one Adam over every parameter, set by ``config.train``. A model that
        needs several (a GAN's generator and discriminator, each with its own rate) returns
        one spec per name; checkpoints keep each optimizer's state under its name.
        """
        t = self.config.train
        adam = torch.optim.Adam(
            self.parameters(), lr=t.lr, betas=t.betas, weight_decay=t.weight_decay
        )
        return {"model": OptimizerSpec.from_train(adam, t)}

    def train_step(
        self, batch: dict[str, torch.Tensor], opt: StepOptimizer
    ) -> tuple[float, dict[str, float]]:
        """One optimisation step on ``batch``: by default, minimise :meth:`loss` with "model".

        Override for other schemes (e.g. alternating discriminator and generator updates):
        run forward passes under ``opt.autocast()``, read schedules from ``opt.step``, and hand
        each loss to ``opt.backward_step(name, loss)``, which does the (scaled) backward,
        gradient averaging across processes, clipping and the update of that optimizer.

        Args:
            batch: Training windows (see :meth:`loss`), on the model's device.
            opt: The trainer's optimizers, step counter and precision.

        Returns:
            The loss to log (averaged over processes) and named terms as floats.
        """
        with opt.autocast():
            loss, terms = self.loss(batch, step=opt.step)
        return opt.backward_step("model", loss), terms

    def validation_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Cheap validation measures of one batch of training-length windows.

        The default is the loss (schedules at their final value) and its terms. Models with a
        likelihood may add, e.g., the negative log-likelihood in nats per dimension. Averaged
        over the validation windows and logged in the ``valid`` records of ``metrics.jsonl``.

        Args:
            batch: Windows of ``config.window`` frames, frames in :attr:`frame_dtype`.

        Returns:
            Measures averaged over the batch.
        """
        loss, terms = self.loss(batch)
        return {"loss": float(loss), **terms}

    def rollout(
        self,
        context_frames: torch.Tensor,
        context_states: torch.Tensor,
        actions: torch.Tensor,
        num_samples: int = 1,
        decode_steps: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> torch.Tensor:
        """Imagine the future frames that ``actions`` lead to, batched over samples.

        The one rollout loop every model shares (mbrl-lib's ``reset``/``sample``, nanoGPT's
        ``generate``): :meth:`begin_rollout` encodes the context once, for ``B * N`` rows,
        then :meth:`imagine_step` imagines one frame at a time. Steps after the last requested
        frame cannot change it, so they are not run, and the last one run does not feed its
        frame back.

        Args:
            context_frames: ``(B, Tc, C, H, W)`` observed frames in [0, 1].
            context_states: ``(B, Tc, S)`` robot states of those frames.
            actions: ``(B, Tc - 1 + T, A)``: the ``Tc - 1`` actions between the context frames,
                then the ``T`` actions to imagine; ``actions[:, t]`` acts on frame ``t``.
            num_samples: Futures drawn per sequence (stochastic models); no Python loop.
            decode_steps: Indices in ``[0, T)`` of the future frames to return, in this order
                (all if None).
            generator: Source of all sampling randomness, for reproducible rollouts.
            **options: A model's own rollout options (the VPN's ``sampler``).

        Returns:
            ``(B, num_samples, len(decode_steps) or T, C, H, W)`` predicted frames in [0, 1],
            in the dtype of ``context_frames`` (whatever precision autocast decoded in).
        """
        _, steps = self.future_steps(context_frames, actions, decode_steps)
        state = self.begin_rollout(
            context_frames, context_states, actions, num_samples, generator, **options
        )
        wanted, horizon = set(steps), max(steps) + 1
        frames: dict[int, torch.Tensor] = {}
        for k in range(horizon):
            x = self.imagine_step(state, k, generator, feed_back=k < horizon - 1)
            if k in wanted:
                frames[k] = x.to(context_frames.dtype)
        out = torch.stack([frames[k] for k in steps], dim=1)  # (B*N, T', C, H, W)
        return out.view(context_frames.shape[0], num_samples, len(steps), *out.shape[2:])

    @abstractmethod
    def begin_rollout(
        self,
        context_frames: torch.Tensor,
        context_states: torch.Tensor,
        actions: torch.Tensor,
        num_samples: int,
        generator: torch.Generator | None,
        **options: Any,
    ) -> Any:
        """What a rollout starts from: the context encoded, for ``B * N`` rows.

        Rows are sample-minor (:func:`repeat_samples`): row ``b * N + n`` is sample ``n`` of
        sequence ``b``. Arguments as :meth:`rollout`'s.

        Returns:
            The model's rollout state, which :meth:`imagine_step` advances in place.
        """

    @abstractmethod
    def imagine_step(
        self, state: Any, k: int, generator: torch.Generator | None, feed_back: bool
    ) -> torch.Tensor:
        """Imagine future frame ``k`` (steps run in order ``0, 1, ...``), updating ``state``.

        Args:
            state: What :meth:`begin_rollout` returned, as the previous steps left it.
            k: Index of the future frame, in ``[0, T)``.
            generator: The rollout's source of sampling randomness.
            feed_back: False on the last step run: nothing will read its frame, so the model
                may skip encoding it for a next step.

        Returns:
            ``(B * N, C, H, W)`` frame in [0, 1].
        """

    @classmethod
    def future_steps(
        cls,
        context_frames: torch.Tensor,
        actions: torch.Tensor,
        decode_steps: Sequence[int] | None,
    ) -> tuple[int, list[int]]:
        """``T`` and the future indices a :meth:`rollout` returns, checked.

        Returns:
            The number of future frames ``T`` the actions imply, and ``decode_steps`` as a
            list (every index in ``[0, T)`` when None).

        Raises:
            ValueError: An index is outside ``[0, T)``, or none is asked for.
        """
        t_future = cls.future_length(context_frames, actions)
        steps = list(range(t_future)) if decode_steps is None else [int(k) for k in decode_steps]
        if not steps or any(k < 0 or k >= t_future for k in steps):
            raise ValueError(f"decode_steps must be indices in [0, {t_future}), got {steps}")
        return t_future, steps

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
