"""Multi-scale adversarial next-frame prediction, action-conditioned.

Mathieu, Couprie & LeCun, "Deep multi-scale video prediction beyond mean square error",
ICLR 2016 (seed 002 is the README of a TensorFlow re-implementation). Per step ``t``
(frame ``t`` -> frame ``t+1``), with ``X`` the ``history_frames`` frames up to ``x_t``,
``c_t`` the action and the observed robot state, ``z_t`` the noise, and scales
``k = 0 .. K-1`` from coarsest (``1 / 2^(K-1)`` of the frame) to finest (the frame):

    Y_0 = base_0 + G_0(X_0, c_t, z_t)
    Y_k = up(Y_{k-1}) + G_k(X_k, up(Y_{k-1}), c_t, z_t)          x^_{t+1} = Y_{K-1}

``X_k`` is ``X`` average-pooled to scale ``k``; ``base_0`` is 0 as in the paper, or the last
history frame at scale 0 with ``predict_residual`` (our option: in pushing most pixels do not
move, so ``G_0`` then learns the change instead of the whole frame). The discriminator has
one small convnet with a fully connected head per scale, each giving the probability that
``x_{t+1}`` at its scale is real; conditional (``conditional_discriminator``, the paper's
``D(X, Y)`` and seed 000 section 1.2.1) it also sees ``X_k``, so it judges whether the motion
follows from the past, not only whether a frame looks real. Losses (sums over the pixels of a
frame, averaged over frames and scales, as the paper defines them on images):

    L_G = lambda_adv * mean_k BCE(D_k(X, Y_k), 1) + lambda_lp * mean_k |Y_k - x_k|^p
          + lambda_gdl * mean_k GDL_alpha(Y_k, x_k)
    L_D = mean_k [BCE(D_k(X, x_k), 1 - label_smoothing) + BCE(D_k(X, Y_k), 0)] / 2

Training is teacher-forced: every step of the window is predicted from true frames, all in
one batched call; the history of the first steps repeats the window's first frame, as the
planner repeats an episode's first frame. A rollout feeds its predictions back as history.
The generator is fully convolutional, so it trains on random ``crop_size`` patches (the
paper: 32x32) and runs on whole frames; the discriminator, whose heads are fully connected,
only ever sees patches of the training size.

Action conditioning (not in the paper, which ignores actions): the action of the predicted
step and the robot state of its input frame while that frame is observed (the last observed
state after that, never a true future state: see :mod:`foresight.models.conditioning`) are
tiled as extra input channels at every scale of the generator and the discriminator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from foresight.batch import ACTIONS, FRAMES, STATES
from foresight.models.base import (
    OptimizerSpec,
    StepOptimizer,
    VideoModel,
    repeat_samples,
)
from foresight.models.conditioning import ConditionedConfig, action_state
from foresight.models.registry import register_model
from foresight.registry import Registry

Layout = tuple[tuple[int, ...], ...]
OptimizerName = Literal["adam", "sgd"]

# ----------------------------------------------------------------------------------------------
# Config


@dataclass(frozen=True)
class GANConfig(ConditionedConfig):
    """Multi-scale adversarial video model (Mathieu et al., 2016).

    Per-scale layouts are lists with one entry per scale, coarsest first; their length is the
    number of scales ``K``. The paper's (``gan_paper.yaml``) has 4 scales.

    Attributes:
        history_frames: Past frames the generator sees (4 in the paper). Fewer observed frames
            than this (a rollout's context, a window's first steps) are padded by repeating the
            first one, as the planner does at the start of an episode.
        crop_size: Side of the random square patches the model trains on (32 in the paper);
            None trains on whole frames. Must be divisible by ``2^(K-1)``, like ``image_size``.
        g_widths: Hidden channels of each generator scale's convolutions.
        g_kernels: Kernel sizes of each generator scale's convolutions (one more than its
            widths: the last maps to the 3 output channels).
        d_widths: Channels of each discriminator scale's (unpadded) convolutions.
        d_kernels: Their kernel sizes (as many as ``d_widths``).
        d_fc: Hidden sizes of each discriminator scale's fully connected head (a last layer
            to one logit is added).
        conditional_discriminator: The discriminator also sees the generator's input frames.
        predict_residual: The coarsest scale predicts a change of the last history frame.
        noise_channels: Size of the noise vector ``z`` tiled at every generator scale
            (0: a deterministic model).
        adv_weight: ``lambda_adv`` (0.05 in the paper). 0 trains without adversary: no
            discriminator is built, and only the ``generator`` optimizer exists.
        lp_weight: ``lambda_lp`` (1 in the paper).
        gdl_weight: ``lambda_gdl`` (1 in the paper).
        lp_power: ``p`` of the ``L_p`` loss (2 in the paper).
        gdl_alpha: ``alpha`` of the gradient difference loss (1 in the paper).
        label_smoothing: The discriminator's target for real frames is ``1 - label_smoothing``
            (one-sided smoothing, Salimans et al. 2016), so it never becomes so sure that the
            generator's adversarial gradient vanishes.
        g_optimizer: Generator optimizer (``adam`` with ``train.lr``/``train.betas``, or
            ``sgd``); its warm-up and clipping are ``train.warmup_steps``/``train.grad_clip``.
        d_optimizer: Discriminator optimizer (``sgd`` in the paper).
        d_lr: Discriminator learning rate (0.02 in the paper).
        d_betas: Discriminator Adam betas (when ``d_optimizer`` is ``adam``).
        d_grad_clip: Max gradient norm of the discriminator (0: no clipping).
    """

    model: str = "gan"
    history_frames: int = 2
    crop_size: int | None = None
    g_widths: Layout = ((32, 64, 32), (32, 64, 32), (32, 64, 32), (32, 64, 32))
    g_kernels: Layout = ((3, 3, 3, 3), (5, 3, 3, 5), (5, 3, 3, 5), (5, 3, 3, 5))
    d_widths: Layout = ((32,), (32, 64, 64), (32, 64, 64), (32, 64, 64))
    d_kernels: Layout = ((3,), (3, 3, 3), (5, 5, 5), (7, 7, 5))
    d_fc: Layout = ((128,), (128,), (128,), (128,))
    conditional_discriminator: bool = True
    predict_residual: bool = True
    noise_channels: int = 4
    adv_weight: float = 0.05
    lp_weight: float = 1.0
    gdl_weight: float = 1.0
    lp_power: float = 2.0
    gdl_alpha: float = 1.0
    label_smoothing: float = 0.1
    g_optimizer: OptimizerName = "adam"
    d_optimizer: OptimizerName = "sgd"
    d_lr: float = 0.02
    d_betas: tuple[float, float] = (0.5, 0.999)
    d_grad_clip: float = 0.0

    @property
    def scales(self) -> int:
        """Number of pyramid scales ``K``."""
        return len(self.g_widths)

    @property
    def train_size(self) -> int:
        """Side of the frames the model trains on (and the discriminator's input size)."""
        return self.crop_size or self.image_size

    def scale_size(self, size: int, k: int) -> int:
        """Side at scale ``k`` (0 = coarsest) of a ``size`` frame."""
        return size // 2 ** (self.scales - 1 - k)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("history_frames", "context_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.noise_channels < 0:
            raise ValueError(f"noise_channels must be >= 0, got {self.noise_channels}")
        # The discriminator's optimizer is built here, not from train:, so check it here.
        if not self.d_lr > 0:
            raise ValueError(f"d_lr must be a positive number, got {self.d_lr}")
        if len(self.d_betas) != 2 or not all(0.0 <= b < 1.0 for b in self.d_betas):
            raise ValueError(f"d_betas must be two numbers in [0, 1), got {list(self.d_betas)}")
        if self.d_grad_clip < 0:
            raise ValueError(f"d_grad_clip must be >= 0 (0: off), got {self.d_grad_clip}")
        k = self.scales
        if k < 1 or any(len(x) != k for x in (self.g_kernels, self.d_widths, self.d_kernels)):
            raise ValueError("g_widths, g_kernels, d_widths, d_kernels need one entry per scale")
        if len(self.d_fc) != k:
            raise ValueError("d_fc needs one entry per scale")
        for i, (w, ks) in enumerate(zip(self.g_widths, self.g_kernels, strict=True)):
            if len(ks) != len(w) + 1 or any(x % 2 == 0 for x in ks):
                raise ValueError(f"g_kernels[{i}] needs {len(w) + 1} odd sizes, got {list(ks)}")
        if self.crop_size is not None and not 0 < self.crop_size <= self.image_size:
            raise ValueError(f"crop_size must be in (0, image_size], got {self.crop_size}")
        for size in (self.image_size, self.train_size):
            if size % 2 ** (k - 1):
                raise ValueError(f"frame sides must be divisible by 2^(scales-1), got {size}")
        for i, (w, ks) in enumerate(zip(self.d_widths, self.d_kernels, strict=True)):
            if len(ks) != len(w):
                raise ValueError(f"d_kernels[{i}] needs {len(w)} sizes, got {list(ks)}")
            if _valid_side(self.scale_size(self.train_size, i), ks) < 2:
                raise ValueError(
                    f"discriminator scale {i}: kernels {list(ks)} leave nothing to pool of a "
                    f"{self.scale_size(self.train_size, i)}px patch"
                )


def _valid_side(size: int, kernels: Sequence[int]) -> int:
    """Side left by unpadded convolutions of ``kernels`` on a ``size`` side."""
    return size - sum(k - 1 for k in kernels)


OptimizerFactory = Callable[..., torch.optim.Optimizer]

#: The generator's and discriminator's torch optimizers, by the name ``g_optimizer`` and
#: ``d_optimizer`` give: ``factory(params, lr, betas)``.
TORCH_OPTIMIZERS = Registry[OptimizerFactory]("GAN optimizer")
TORCH_OPTIMIZERS.add("adam", lambda params, lr, betas: torch.optim.Adam(params, lr=lr, betas=betas))
TORCH_OPTIMIZERS.add("sgd", lambda params, lr, betas: torch.optim.SGD(params, lr=lr))

# ----------------------------------------------------------------------------------------------
# Helpers


@dataclass
class GANRollout:
    """Where a GAN rollout stands, for ``M = B * N`` rows (:meth:`MultiScaleGAN.imagine_step`).

    Attributes:
        history: ``(M, history_frames * C, H, W)`` the frames the next step reads, in [-1, 1].
        cond: ``(M, T, A+S)`` action and observed state of each future step.
        noise: ``(M, T, noise_channels)`` each future step's noise.
        out_dtype: dtype of the context frames, which the returned frames take.
    """

    history: torch.Tensor
    cond: torch.Tensor
    noise: torch.Tensor
    out_dtype: torch.dtype


def tile(vectors: torch.Tensor, size: int) -> torch.Tensor:
    """``(M, D)`` -> ``(M, D, size, size)``: one constant map per entry."""
    return vectors[:, :, None, None].expand(-1, -1, size, size)


def downscale(frames: torch.Tensor, factor: int) -> torch.Tensor:
    """``(M, C, S, S)`` -> ``(M, C, S/factor, S/factor)`` by area averaging."""
    return frames if factor == 1 else F.avg_pool2d(frames, factor)


def upscale(frames: torch.Tensor) -> torch.Tensor:
    """``(M, C, S, S)`` -> ``(M, C, 2S, 2S)``, bilinear."""
    return F.interpolate(frames, scale_factor=2, mode="bilinear", align_corners=False)


def history_index(steps: int, history: int, device: torch.device) -> torch.Tensor:
    """``(steps, history)``: frame indices of each step's history, oldest first.

    Step ``t`` sees frames ``t - history + 1 .. t``; indices before 0 repeat frame 0.
    """
    t = torch.arange(steps, device=device)[:, None]
    return (t + torch.arange(1 - history, 1, device=device)).clamp(min=0)


def random_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, L, C, H, W)`` -> ``(B, L, C, size, size)``: one random patch per sequence.

    Offsets come from the global RNG, so the trainer's seeding and resume cover them.
    """
    b, _, _, h, w = frames.shape
    if size == h == w:
        return frames
    ys = torch.randint(0, h - size + 1, (b,)).to(frames.device)
    xs = torch.randint(0, w - size + 1, (b,)).to(frames.device)
    span = torch.arange(size, device=frames.device)
    rows = (ys[:, None] + span)[:, :, None]  # (B, size, 1)
    cols = (xs[:, None] + span)[:, None, :]  # (B, 1, size)
    batch = torch.arange(b, device=frames.device)[:, None, None]
    return frames.permute(0, 3, 4, 1, 2)[batch, rows, cols].permute(0, 3, 4, 1, 2)


def center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """``(..., H, W)`` -> ``(..., size, size)`` around the centre."""
    h, w = frames.shape[-2:]
    y, x = (h - size) // 2, (w - size) // 2
    return frames[..., y : y + size, x : x + size]


def gradient_difference(pred: torch.Tensor, target: torch.Tensor, alpha: float) -> torch.Tensor:
    """Gradient difference loss per frame: ``sum | |dY| - |dY^| |^alpha`` over both axes.

    Args:
        pred: ``(M, C, H, W)``.
        target: ``(M, C, H, W)``.
        alpha: Exponent of each difference.

    Returns:
        ``(M,)`` sums over each frame's pixels.
    """

    def grads(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (x[..., 1:, :] - x[..., :-1, :]).abs(), (x[..., :, 1:] - x[..., :, :-1]).abs()

    (py, px), (ty, tx) = grads(pred), grads(target)
    dy = ((ty - py).abs() ** alpha).flatten(1).sum(1)
    dx = ((tx - px).abs() ** alpha).flatten(1).sum(1)
    return dy + dx


def conv_stack(cin: int, widths: Sequence[int], kernels: Sequence[int], padded: bool) -> list:
    """Convolutions of ``widths`` channels and ``kernels`` sizes, each followed by LeakyReLU."""
    layers: list[nn.Module] = []
    for width, k in zip(widths, kernels, strict=False):
        layers += [nn.Conv2d(cin, width, k, padding=k // 2 if padded else 0), nn.LeakyReLU(0.2)]
        cin = width
    return layers


# ----------------------------------------------------------------------------------------------
# Generator


class MultiScaleGenerator(nn.Module):
    """The generator pyramid: coarse-to-fine, each scale refining the upsampled coarser one.

    Every scale is fully convolutional ("same" padding), so any frame side divisible by
    ``2^(K-1)`` goes through it.

    Args:
        config: The model config (layouts, history, noise, conditioning sizes).
    """

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = config
        side = 3 * config.history_frames + config.action_dim + config.state_dim
        side += config.noise_channels
        self.scales = nn.ModuleList()
        for k, (widths, kernels) in enumerate(zip(config.g_widths, config.g_kernels, strict=True)):
            cin = side + (3 if k > 0 else 0)  # finer scales also see the coarser prediction
            last = kernels[-1]
            layers = conv_stack(cin, widths, kernels[:-1], padded=True)
            layers.append(nn.Conv2d(widths[-1] if widths else cin, 3, last, padding=last // 2))
            self.scales.append(nn.Sequential(*layers))

    def forward(
        self, history: torch.Tensor, cond: torch.Tensor, noise: torch.Tensor
    ) -> list[torch.Tensor]:
        """Predict the next frame at every scale.

        Args:
            history: ``(M, 3 * history_frames, S, S)`` past frames in [-1, 1], oldest first.
            cond: ``(M, A + S_state)`` action and (scaled) observed state.
            noise: ``(M, noise_channels)``.

        Returns:
            ``[(M, 3, S_k, S_k)]`` predictions in [-1, 1] (not clamped), coarsest first.
        """
        preds: list[torch.Tensor] = []
        for k, net in enumerate(self.scales):
            x = downscale(history, 2 ** (len(self.scales) - 1 - k))
            s = x.shape[-1]
            inputs = [x, tile(cond, s), tile(noise, s)]
            if k == 0:
                base = x[:, -3:] if self.config.predict_residual else torch.zeros_like(x[:, -3:])
            else:
                base = upscale(preds[-1])
                inputs.append(base)
            preds.append(base + net(torch.cat(inputs, dim=1)))
        return preds


# ----------------------------------------------------------------------------------------------
# Discriminator


class MultiScaleDiscriminator(nn.Module):
    """One convnet + fully connected head per scale, scoring a next frame real or generated.

    Unpadded convolutions, a ``2x2`` max-pooling and fully connected layers, as in the
    paper; LeakyReLU instead of its ReLU (no unit dies for good in an adversarial game). The
    heads fix the input size: patches of ``config.train_size``.

    Args:
        config: The model config.
    """

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = config
        cin = 3 + config.action_dim + config.state_dim
        if config.conditional_discriminator:
            cin += 3 * config.history_frames
        self.convs = nn.ModuleList()
        self.heads = nn.ModuleList()
        for k, (widths, kernels, fc) in enumerate(
            zip(config.d_widths, config.d_kernels, config.d_fc, strict=True)
        ):
            self.convs.append(nn.Sequential(*conv_stack(cin, widths, kernels, padded=False)))
            side = _valid_side(config.scale_size(config.train_size, k), kernels) // 2
            sizes = [side * side * (widths[-1] if widths else cin), *fc]
            head: list[nn.Module] = [nn.Flatten()]
            for a, b in zip(sizes[:-1], sizes[1:], strict=True):
                head += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
            head.append(nn.Linear(sizes[-1], 1))
            self.heads.append(nn.Sequential(*head))

    def forward(
        self, frames: list[torch.Tensor], history: torch.Tensor, cond: torch.Tensor
    ) -> list[torch.Tensor]:
        """Logits that each scale's next frame is real (probability: their sigmoid).

        Args:
            frames: ``[(M, 3, S_k, S_k)]`` next frames in [-1, 1], coarsest first.
            history: ``(M, 3 * history_frames, S, S)`` the generator's input frames (read
                only by the conditional discriminator).
            cond: ``(M, A + S_state)``.

        Returns:
            ``[(M,)]`` logits, coarsest first.
        """
        logits = []
        for k, (conv, head) in enumerate(zip(self.convs, self.heads, strict=True)):
            x = frames[k]
            inputs = [x, tile(cond, x.shape[-1])]
            if self.config.conditional_discriminator:
                inputs.append(downscale(history, history.shape[-1] // x.shape[-1]))
            h = F.max_pool2d(conv(torch.cat(inputs, dim=1)), 2)
            logits.append(head(h)[:, 0])
        return logits


# ----------------------------------------------------------------------------------------------
# The model


@register_model("gan")
class MultiScaleGAN(VideoModel):
    """Multi-scale adversarial video prediction of Mathieu, Couprie & LeCun (ICLR 2016).

    Deterministic next-frame generator plus a noise input (``noise_channels``) for sampling,
    trained with ``L_p``, gradient difference and (when ``adv_weight > 0``) adversarial losses
    by alternating discriminator and generator updates (see :meth:`train_step`).
    """

    config_class = GANConfig
    config: GANConfig

    def __init__(self, config: GANConfig) -> None:
        super().__init__(config)
        self.generator = MultiScaleGenerator(config)
        self.discriminator = MultiScaleDiscriminator(config) if config.adv_weight > 0 else None

    # --- inputs ---------------------------------------------------------------------------

    def _steps(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every one-step prediction of a teacher-forced window, flattened to ``M = B*(L-1)``.

        In training mode frames are cropped to one random ``crop_size`` patch per sequence;
        in eval mode to the centre patch (the discriminator only takes that size).

        Returns:
            ``history`` ``(M, 3*H, S, S)`` and ``target`` ``(M, 3, S, S)`` in [-1, 1],
            ``cond`` ``(M, A+S)``, ``noise`` ``(M, noise_channels)`` (from the global RNG).
        """
        c = self.config
        frames = batch[FRAMES]
        if c.crop_size is not None:
            crop = random_crop if self.training else center_crop
            frames = crop(frames, c.crop_size)
        frames = frames * 2 - 1
        b, length = frames.shape[:2]
        idx = history_index(length - 1, c.history_frames, frames.device)  # (L-1, H)
        history = frames[:, idx].flatten(2, 3).flatten(0, 1)  # (M, H*3, S, S)
        target = frames[:, 1:].flatten(0, 1)
        cond = action_state(
            batch[STATES], batch[ACTIONS], c.context_frames, self.config.state_scale
        ).flatten(0, 1)
        noise = torch.randn(b * (length - 1), c.noise_channels, device=frames.device)
        return history, target, cond, noise

    def _pyramid(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """``(M, C, S, S)`` -> the frames at every scale, coarsest first."""
        k = self.config.scales
        return [downscale(frames, 2 ** (k - 1 - i)) for i in range(k)]

    # --- losses ---------------------------------------------------------------------------

    def _generator_loss(
        self,
        preds: list[torch.Tensor],
        targets: list[torch.Tensor],
        history: torch.Tensor,
        cond: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``L_G`` of predictions at every scale, and its terms."""
        c = self.config
        pairs = list(zip(preds, targets, strict=True))
        lp = torch.stack([(p - t).abs().pow(c.lp_power).flatten(1).sum(1).mean() for p, t in pairs])
        lp = lp.mean()
        gdl = torch.stack([gradient_difference(p, t, c.gdl_alpha).mean() for p, t in pairs]).mean()
        total = c.lp_weight * lp + c.gdl_weight * gdl
        # Per-pixel MSE of the full-size frame in [0, 1], comparable with the other models.
        terms = {"mse": float(((preds[-1] - targets[-1]).detach() / 2).pow(2).mean())}
        terms |= {"lp": float(lp.detach()), "gdl": float(gdl.detach())}
        if self.discriminator is not None:
            logits = self.discriminator(preds, history, cond)
            adv = torch.stack(
                [F.binary_cross_entropy_with_logits(x, torch.ones_like(x)) for x in logits]
            ).mean()
            total = total + c.adv_weight * adv
            terms["g_adv"] = float(adv.detach())
        return total, terms

    def _discriminator_loss(
        self,
        preds: list[torch.Tensor],
        targets: list[torch.Tensor],
        history: torch.Tensor,
        cond: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``L_D`` on real next frames and (detached) generated ones, and its terms."""
        assert self.discriminator is not None
        m = targets[0].shape[0]
        frames = [torch.cat([t, p.detach()]) for t, p in zip(targets, preds, strict=True)]
        logits = self.discriminator(frames, history.repeat(2, 1, 1, 1), cond.repeat(2, 1))
        real = torch.ones(m, device=cond.device)
        labels = torch.cat([real * (1 - self.config.label_smoothing), real * 0])
        loss = torch.stack(
            [F.binary_cross_entropy_with_logits(x, labels.to(x.dtype)) for x in logits]
        ).mean()
        prob = torch.stack([x.detach().float().sigmoid() for x in logits])  # (K, 2M)
        correct = torch.cat([prob[:, :m] > 0.5, prob[:, m:] < 0.5], dim=1).float()
        return loss, {
            "d_loss": float(loss.detach()),
            "d_real": float(prob[:, :m].mean()),
            "d_fake": float(prob[:, m:].mean()),
            "d_acc": float(correct.mean()),
        }

    def loss(
        self, batch: dict[str, torch.Tensor], step: int | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The generator's objective ``L_G`` over every teacher-forced step of the window.

        Args:
            batch: ``frames`` ``(B, L, C, H, W)``, ``states`` ``(B, L, S)``, ``actions``
                ``(B, L-1, A)``.
            step: Unused (no schedules).

        Returns:
            ``L_G`` and its terms: ``lp``, ``gdl``, ``mse`` (per pixel in [0, 1]) and, with an
            adversary, ``g_adv`` (its BCE before ``adv_weight``).
        """
        history, target, cond, noise = self._steps(batch)
        preds = self.generator(history, cond, noise)
        return self._generator_loss(preds, self._pyramid(target), history, cond)

    # --- optimisation ---------------------------------------------------------------------

    def optimizers(self) -> dict[str, OptimizerSpec]:
        """``generator`` (``train.*`` settings) and ``discriminator`` (``d_*``), when built."""
        c, t = self.config, self.config.train
        g = TORCH_OPTIMIZERS.lookup(c.g_optimizer)(self.generator.parameters(), t.lr, t.betas)
        specs = {"generator": OptimizerSpec.from_train(g, t)}
        if self.discriminator is not None:
            d_optimizer = TORCH_OPTIMIZERS.lookup(c.d_optimizer)
            d = d_optimizer(self.discriminator.parameters(), c.d_lr, c.d_betas)
            specs["discriminator"] = OptimizerSpec.from_train(
                d, t, lr=c.d_lr, warmup_steps=0, grad_clip=c.d_grad_clip
            )
        return specs

    def train_step(
        self, batch: dict[str, torch.Tensor], opt: StepOptimizer
    ) -> tuple[float, dict[str, float]]:
        """One discriminator update on real and generated frames, then one generator update.

        Both updates use the same generated frames; the generator's adversarial term is
        scored by the just-updated discriminator, whose parameters are frozen meanwhile (no
        wasted gradients). Without adversary (``adv_weight`` 0) only the generator steps.

        Returns:
            ``L_G`` (logged as ``loss``) and the terms of both losses.
        """
        with opt.autocast():
            history, target, cond, noise = self._steps(batch)
            preds = self.generator(history, cond, noise)
            targets = self._pyramid(target)
        terms: dict[str, float] = {}
        if self.discriminator is not None:
            with opt.autocast():
                d_loss, terms = self._discriminator_loss(preds, targets, history, cond)
            opt.backward_step("discriminator", d_loss)
            self.discriminator.requires_grad_(False)
        try:
            with opt.autocast():
                g_loss, g_terms = self._generator_loss(preds, targets, history, cond)
            loss = opt.backward_step("generator", g_loss)
        finally:
            if self.discriminator is not None:
                self.discriminator.requires_grad_(True)
        return loss, {**g_terms, **terms}

    # --- imagination ----------------------------------------------------------------------

    def begin_rollout(
        self,
        context_frames: torch.Tensor,
        context_states: torch.Tensor,
        actions: torch.Tensor,
        num_samples: int,
        generator: torch.Generator | None,
    ) -> GANRollout:
        """The history the generator reads, and the noise of every future step.

        Samples differ only through the noise, drawn for all ``T`` steps at once so that
        ``decode_steps`` never changes a frame. Context shorter than ``history_frames`` is
        padded by repeating its first frame. Arguments as :meth:`VideoModel.rollout`'s.
        """
        c = self.config
        t_future = self.future_length(context_frames, actions)
        b, tc = context_frames.shape[:2]
        device = context_frames.device
        cond = action_state(context_states, actions, tc, self.config.state_scale)[
            :, tc - 1 :
        ]  # (B, T, A+S)
        idx = torch.arange(tc - c.history_frames, tc, device=device).clamp(min=0)
        history = context_frames[:, idx] * 2 - 1  # (B, H, C, H, W)
        history = repeat_samples(history, num_samples).flatten(1, 2)  # (B*N, H*C, H, W)
        noise = torch.randn(
            b * num_samples, t_future, c.noise_channels, generator=generator, device=device
        )
        return GANRollout(
            history=history,
            cond=repeat_samples(cond, num_samples).to(history.dtype),
            noise=noise.to(history.dtype),
            out_dtype=context_frames.dtype,
        )

    def imagine_step(
        self, state: GANRollout, k: int, generator: torch.Generator | None, feed_back: bool
    ) -> torch.Tensor:
        """One imagined frame; recursive, as in the paper: it joins the next step's history."""
        x = self.generator(state.history, state.cond[:, k], state.noise[:, k])[-1].clamp(-1, 1)
        if feed_back:
            state.history = torch.cat([state.history[:, 3:], x.to(state.history.dtype)], dim=1)
        return (x.to(state.out_dtype) + 1) / 2  # (B*N, C, H, W) in [0, 1]
