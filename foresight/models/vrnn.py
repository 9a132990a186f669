"""Hierarchical conditional VRNN, action-conditioned, and its single-level variant.

Castrejon, Ballas & Courville, "Improved Conditional VRNNs for Video Prediction", ICCV 2019
(seed 001). Frames are encoded by a ResNet CNN into a pyramid of feature maps ``f(x)[s]`` at
the sides ``s = 1, 4, 8, ..., S`` (``1`` is a vector). Per predicted frame ``t`` (from
``x_{t-1}``), with ``c_t`` the action and observed robot state tiled over the map, and latent
levels ``l = 1 .. L`` at sides ``s_1 < ... < s_L`` (coarsest first):

    p(z_t^l | z_t^{<l}, ...) = PriorConvLSTM_l(f(x_{t-1})[s_l], up(z_t^{<l}), c_t)
    q(z_t^l | z_t^{<l}, ...) = PosteriorConvLSTM_l(f(x_t)[s_l], up(z_t^{<l}), c_t)
    y^1 = DecoderStage_1(f(x_{t-1})[1], z_t^{l: s_l = 1}, c_t)
    y^k = DecoderStage_k(upconv(y^{k-1}), f(x_{t-1})[s_k], z_t^{l: s_l = s_k}, c_t)
    x^_t = sigmoid(conv(y^K))

    loss = mean_t MSE(x^_t, x_t) + beta(step) * mean_t sum_l KL(q(z_t^l) || p(z_t^l))

``up(z_t^{<l})`` is every coarser level's sample, nearest-upsampled to ``s_l`` (the paper's
dense latent connectivity; ``dense: false`` keeps only the level just above, the paper's
ablation). Each latent level enters the decoder stage of its side, so every level reaches the
output. Decoder stages are ConvLSTMs up to ``decoder_lstm_max_side`` and residual conv blocks
above it (the paper's 6-ConvLSTM likelihood is ``decoder_lstm_max_side = S``).

Initial state (as the paper): every ConvLSTM's ``(h, c)`` is a small CNN (one convolution) of
the context frames' features at its side, ``[f(x_last context), mean over context f(x)]``, so any
number of context frames works. Only future frames are predicted; training is teacher-forced
(true ``x_{t-1}``, posterior samples), a rollout samples the prior ancestrally (coarsest level
first) and feeds its predictions back through the encoder.

Action conditioning (not in seed 001): ``c_t`` is the action ``a_{t-1}`` that leads to ``x_t``
and the robot state of ``x_{t-1}`` while that frame is observed, the last observed state after
it (never a true future state: see :mod:`foresight.models.conditioning`), tiled and
concatenated to the input of every prior, posterior and decoder stage.

Variants are presets of the one class: ``vrnn`` (the paper's "w/o Hier": one 1x1 level) and
``hvrnn`` ("w/ Hier": ``level_sides: [1, 4, 16]`` at 32x32 frames, the paper's 1-8-32 at
64x64, halved). Checkpoints written when ``hvrnn`` was a class of its own load as ``vrnn``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from foresight.batch import ACTIONS, FRAMES, STATES
from foresight.models.base import VideoModel, repeat_samples, warmup_factor
from foresight.models.conditioning import ConditionedConfig, action_state
from foresight.models.layers import (
    CDNAComposer,
    ConvLSTMCell,
    check_cdna,
    conv_levels,
    gaussian_kl,
    gaussian_sample,
)
from foresight.models.registry import register_model

LSTMState = tuple[torch.Tensor, torch.Tensor]

# ----------------------------------------------------------------------------------------------
# Configs


@dataclass(frozen=True)
class VRNNConfig(ConditionedConfig):
    """Conditional VRNN with a hierarchy of latent levels (Castrejon et al., 2019).

    Attributes:
        channels: Encoder width at full resolution; doubles at each halving of the side.
        max_channels: Cap on those widths.
        g_dim: Size of the ``1x1`` frame feature (the encoder's vector).
        rnn_size: Width of the ``1x1`` ConvLSTMs (the top latent level, the first decoder
            stage); the ConvLSTMs at side ``s`` take the encoder's width at ``s``.
        z_dim: Latent channels of every level.
        level_sides: Side of each latent level, coarsest first; each must be 1 or a side of
            the pyramid ``4, 8, ..., image_size``.
        dense: Each level sees every coarser level's sample (the paper's dense connectivity);
            False: only the level just above.
        decoder_lstm_max_side: Decoder stages at sides up to this are ConvLSTMs, finer ones
            residual conv blocks (cheaper; the paper uses ConvLSTMs at every side).
        beta: Weight of the KL term (relative to the per-pixel MSE).
        beta_warmup_steps: Training steps over which the KL weight ramps linearly from
            ``beta / beta_warmup_steps`` to ``beta`` (the paper's beta warm-up).
        active_threshold: A latent channel is active when its KL, averaged over the batch,
            the predicted steps and the level's positions, exceeds this (nats; 0.01 in the paper).
        context_skip: Every decoder stage also reads the last *context* frame's features
            (SVG's skip connections, Denton & Fergus 2018), not only the previous frame's: in a
            rollout the previous frame is the model's own prediction, so an appearance it
            cannot snap to a few known colours (randomised objects) drifts and fades over the
            horizon; the observed frame keeps it.
        output: How a frame is made: ``pixels`` (the decoder draws it) or ``cdna`` (its masks
            mix copies of the previous frame moved by predicted kernels, the last context frame
            and a drawn frame; Finn et al. 2016, as SVG's ``output``): colours then come from
            frames that have them, so novel objects keep theirs over a rollout.
        cdna_kernels: Moved copies of the previous frame (``output: cdna``).
        cdna_kernel_size: Side of each kernel; the largest motion per step is half of it.
    """

    model: str = "vrnn"
    channels: int = 8
    max_channels: int = 512
    g_dim: int = 64
    rnn_size: int = 128
    z_dim: int = 8
    level_sides: tuple[int, ...] = (1,)
    dense: bool = True
    decoder_lstm_max_side: int = 16
    beta: float = 1e-4
    beta_warmup_steps: int = 1000
    active_threshold: float = 0.01
    context_skip: bool = False
    output: Literal["pixels", "cdna"] = "pixels"
    cdna_kernels: int = 4
    cdna_kernel_size: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        sides = pyramid_sides(self.image_size)  # raises for sizes the pyramid cannot take
        for name in ("channels", "max_channels", "g_dim", "rnn_size", "z_dim", "context_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        levels = list(self.level_sides)
        if not levels or levels != sorted(set(levels)) or not set(levels) <= set(sides):
            raise ValueError(
                f"level_sides must be increasing sides among {sides}, got {self.level_sides}"
            )
        check_cdna(self.cdna_kernels, self.cdna_kernel_size)


# ----------------------------------------------------------------------------------------------
# Building blocks


def pyramid_sides(image_size: int) -> list[int]:
    """Sides of the feature pyramid, coarsest first: ``[1, 4, 8, ..., image_size]``."""
    return [1, *(image_size // 2**i for i in range(conv_levels(image_size), -1, -1))]


class ResBlock(nn.Module):
    """Pre-activation residual block of two ``3x3`` convolutions (He et al., 2016).

    No normalisation: training (teacher-forced, batch statistics) and rollouts (fed-back
    predictions, one frame at a time) then compute exactly the same function.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, cin, H, W)`` -> ``(N, cout, H, W)``."""
        return self.skip(x) + self.conv2(F.leaky_relu(self.conv1(F.leaky_relu(x, 0.2)), 0.2))


class ResNetEncoder(nn.Module):
    """The paper's frame encoder: ResNet blocks and max-pooling, down to a vector.

    Args:
        image_size: Frame side ``S``.
        widths: Channels at the sides ``S, S/2, ..., 4`` (finest first).
        g_dim: Size of the final vector.
    """

    def __init__(self, image_size: int, widths: list[int], g_dim: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, widths[0], 3, 1, 1)
        self.blocks = nn.ModuleList(
            ResBlock(cin, cout) for cin, cout in zip([widths[0], *widths[:-1]], widths, strict=True)
        )
        self.head = nn.Conv2d(widths[-1], g_dim, 4)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encode frames ``(N, 3, S, S)`` in [0, 1] into the pyramid, coarsest first.

        Returns:
            ``[(N, g_dim, 1, 1), (N, w, 4, 4), ..., (N, widths[0], S, S)]``.
        """
        x = self.stem(x)
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            feats.append(x)
        # tanh bounds the vector, so the recurrences see one scale for real and decoded frames.
        return [torch.tanh(self.head(F.leaky_relu(x, 0.2))), *feats[::-1]]


class Recurrent(nn.Module):
    """A ConvLSTM whose state starts as a small CNN of the context, with a conv read-out.

    Args:
        in_channels: Input channels per step.
        hidden: ConvLSTM channels.
        context_channels: Channels of the context features the initial state is made from.
        out_channels: Read-out channels (``2 z`` for a Gaussian: mean and log-variance).
        side: Spatial side (``1``: ``1x1`` kernels, an ordinary LSTM).
    """

    def __init__(
        self, in_channels: int, hidden: int, context_channels: int, out_channels: int, side: int
    ) -> None:
        super().__init__()
        k = 1 if side == 1 else 3
        self.cell = ConvLSTMCell(in_channels, hidden, k)
        self.init = nn.Conv2d(context_channels, 2 * hidden, k, 1, k // 2)
        self.out = nn.Conv2d(hidden, out_channels, k, 1, k // 2)

    def initial_state(self, context: torch.Tensor) -> LSTMState:
        """``(h, c)`` each ``(N, hidden, s, s)`` from context features ``(N, ctx, s, s)``."""
        h, c = self.init(context).chunk(2, dim=1)
        return torch.tanh(h), c

    def forward(self, x: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        """One step: input ``(N, in, s, s)`` -> read-out ``(N, out, s, s)`` and new state."""
        h, state = self.cell(x, state)
        return self.out(h), state


class FeedForward(nn.Module):
    """A stateless decoder stage (a residual block), with :class:`Recurrent`'s interface."""

    def __init__(self, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.block = ResBlock(in_channels, hidden)

    def initial_state(self, context: torch.Tensor) -> None:
        """No state."""
        return None

    def forward(self, x: torch.Tensor, state: None) -> tuple[torch.Tensor, None]:
        """``(N, in, s, s)`` -> ``(N, hidden, s, s)``."""
        return F.leaky_relu(self.block(x), 0.2), None


@dataclass
class States:
    """Recurrent states of one sequence batch: per latent level and per decoder stage."""

    prior: list[LSTMState]
    posterior: list[LSTMState]
    decoder: list[LSTMState | None]

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> States:
        """The same states with ``fn`` applied to every tensor."""

        def each(s: LSTMState | None) -> LSTMState | None:
            return None if s is None else (fn(s[0]), fn(s[1]))

        groups = (self.prior, self.posterior, self.decoder)
        return States(*([each(s) for s in group] for group in groups))


@dataclass
class VRNNRollout:
    """Where a VRNN rollout stands, for ``M = B * N`` rows (:meth:`VRNN.imagine_step`).

    Attributes:
        cond: ``(M, T, A+S)`` action and observed state of each future step.
        states: Every recurrence's state.
        feat_in: Pyramid of the next step's input frame, each ``(M, C_s, s, s)``.
        skip: The last context frame's pyramid (with ``context_skip``), else None.
        previous: ``(M, C, H, W)`` the frame being predicted from (``cdna`` moves it).
        last_seen: ``(M, C, H, W)`` the last context frame (``cdna``'s fallback).
    """

    cond: torch.Tensor
    states: States
    feat_in: list[torch.Tensor]
    skip: list[torch.Tensor] | None
    previous: torch.Tensor
    last_seen: torch.Tensor


def tile(v: torch.Tensor, side: int) -> torch.Tensor:
    """``(N, D)`` -> ``(N, D, side, side)``."""
    return v[:, :, None, None].expand(-1, -1, side, side)


# ----------------------------------------------------------------------------------------------
# The model


@register_model("vrnn")
class VRNN(VideoModel):
    """Conditional VRNN of Castrejon, Ballas & Courville (ICCV 2019, seed 001), action-conditioned.

    With one ``1x1`` latent level this is the paper's "Ours w/o Hier"; with several
    (``level_sides``, the ``hvrnn`` presets) it is "Ours w/ Hier".
    """

    config_class = VRNNConfig
    config: VRNNConfig

    def __init__(self, config: VRNNConfig) -> None:
        super().__init__(config)
        c = config
        self.sides = pyramid_sides(c.image_size)  # [1, 4, ..., S]
        fine_widths = [min(c.channels * 2**i, c.max_channels) for i in range(len(self.sides) - 1)]
        self.encoder = ResNetEncoder(c.image_size, fine_widths, c.g_dim)
        feat = [c.g_dim, *fine_widths[::-1]]  # encoder channels per side, coarsest first
        hidden = [c.rnn_size, *fine_widths[::-1]]  # ConvLSTM channels per side
        self.cond_dim = c.action_dim + c.state_dim
        self.level_index = [self.sides.index(s) for s in c.level_sides]

        def above(level: int) -> int:  # channels of the coarser samples level ``level`` sees
            return c.z_dim * (level if c.dense else min(level, 1))

        def latent(level: int, p: int) -> Recurrent:
            return Recurrent(
                feat[p] + above(level) + self.cond_dim,
                hidden[p],
                2 * feat[p],
                2 * c.z_dim,
                self.sides[p],
            )

        self.prior = nn.ModuleList(latent(lv, p) for lv, p in enumerate(self.level_index))
        self.posterior = nn.ModuleList(latent(lv, p) for lv, p in enumerate(self.level_index))

        # Decoder: stage k at side s_k reads the previous stage (upsampled by a transposed conv),
        # the previous frame's features, the latents of its side and the conditioning.
        stages, ups = [], []
        for p, side in enumerate(self.sides):
            z_in = c.z_dim * self.level_index.count(p)
            up_in = hidden[p] if p > 0 else 0
            in_ch = up_in + feat[p] * (2 if c.context_skip else 1) + z_in + self.cond_dim
            if side <= c.decoder_lstm_max_side:
                stages.append(Recurrent(in_ch, hidden[p], 2 * feat[p], hidden[p], side))
            else:
                stages.append(FeedForward(in_ch, hidden[p]))
            if p > 0:  # 1 -> 4: a 4x4 kernel on the vector; then 4x4 stride-2 doublings
                k, stride, pad = (4, 1, 0) if p == 1 else (4, 2, 1)
                # GroupNorm brings the upsampled path to the scale of the frame features
                # beside it; without it the coarse stages (and the 1x1 latent) reach the
                # frame attenuated ~1e6-fold at initialisation.
                ups.append(
                    nn.Sequential(
                        nn.ConvTranspose2d(hidden[p - 1], hidden[p], k, stride, pad),
                        nn.GroupNorm(1, hidden[p]),
                        nn.LeakyReLU(0.2),
                    )
                )
        self.stages = nn.ModuleList(stages)
        self.ups = nn.ModuleList(ups)
        self.composer = (
            CDNAComposer(hidden[0], c.cdna_kernels, c.cdna_kernel_size, 3)
            if c.output == "cdna"
            else None
        )
        out_ch = 3 if self.composer is None else self.composer.decoder_channels
        self.to_frame = nn.Conv2d(hidden[-1], out_ch, 3, 1, 1)

    def beta(self, step: int | None = None) -> float:
        """Weight of the KL term at training step ``step`` (its final value when None)."""
        return self.config.beta * warmup_factor(step, self.config.beta_warmup_steps)

    # --- pieces of a step -----------------------------------------------------------------

    def _encode(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """``(B, T, C, H, W)`` -> the pyramid, each ``(B, T, C_s, s, s)``, coarsest first."""
        b, t = frames.shape[:2]
        return [f.view(b, t, *f.shape[1:]) for f in self.encoder(frames.flatten(0, 1))]

    def _initial_states(self, context_feats: list[torch.Tensor]) -> States:
        """Every recurrence's state from the context pyramid (each ``(B, Tc, C_s, s, s)``)."""
        ctx = [torch.cat([f[:, -1], f.mean(dim=1)], dim=1) for f in context_feats]
        lv = self.level_index
        return States(
            prior=[m.initial_state(ctx[p]) for m, p in zip(self.prior, lv, strict=True)],
            posterior=[m.initial_state(ctx[p]) for m, p in zip(self.posterior, lv, strict=True)],
            decoder=[m.initial_state(x) for m, x in zip(self.stages, ctx, strict=True)],
        )

    def _latents(
        self,
        feat_in: list[torch.Tensor],
        feat_out: list[torch.Tensor] | None,
        cond: torch.Tensor,
        st: States,
        generator: torch.Generator | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """One step of the hierarchy, coarsest level first; updates ``st`` in place.

        Args:
            feat_in: Pyramid of the input frame ``x_{t-1}``, each ``(N, C_s, s, s)``.
            feat_out: Pyramid of the target ``x_t`` (training: samples from the posterior);
                None to sample the prior (ancestral sampling).
            cond: ``(N, A+S)``.
            st: Recurrent states.
            generator: Source of the prior's sampling noise.

        Returns:
            The samples ``z^l`` ``(N, Z, s_l, s_l)`` and, with ``feat_out``, the KL per
            latent unit ``(N, Z, s_l, s_l)`` of each level.
        """
        zs: list[torch.Tensor] = []
        kls: list[torch.Tensor] = []
        for lv, p in enumerate(self.level_index):
            side = self.sides[p]
            coarser = zs if self.config.dense else zs[-1:]
            up = [F.interpolate(z, size=side, mode="nearest") for z in coarser]
            rest = [*up, tile(cond, side)]
            mu_p, logvar_p = self._gauss(self.prior, lv, [feat_in[p], *rest], st.prior)
            if feat_out is None:
                zs.append(gaussian_sample(mu_p, logvar_p, generator))
                continue
            mu_q, logvar_q = self._gauss(self.posterior, lv, [feat_out[p], *rest], st.posterior)
            zs.append(gaussian_sample(mu_q, logvar_q))  # training noise: the global, seeded RNG
            # A trailing unit axis makes gaussian_kl's sum a no-op: the KL of each latent unit.
            unit = [x[..., None] for x in (mu_q, logvar_q, mu_p, logvar_p)]
            kls.append(gaussian_kl(*unit))
        return zs, kls

    @staticmethod
    def _gauss(
        nets: nn.ModuleList, lv: int, parts: list[torch.Tensor], states: list[LSTMState]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance ``nets[lv]`` on ``cat(parts)``; its ``(mu, logvar)`` (state updated in place)."""
        out, states[lv] = nets[lv](torch.cat(parts, dim=1), states[lv])
        mu, logvar = out.chunk(2, dim=1)
        return mu, logvar

    def _decode(
        self,
        feat_in: list[torch.Tensor],
        zs: list[torch.Tensor],
        cond: torch.Tensor,
        st: States,
        frames: tuple[torch.Tensor, torch.Tensor],
        skip: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """One decoder step (updates ``st`` in place): ``(N, 3, S, S)`` frame in [0, 1].

        ``frames``: the previous frame and the last context frame, each ``(N, 3, S, S)``
        (what ``output: cdna`` moves and falls back on). ``skip``: the last context frame's
        pyramid (with ``context_skip``), each ``(N, C_s, s, s)``.
        """
        outputs: list[torch.Tensor] = []
        for p, (stage, side) in enumerate(zip(self.stages, self.sides, strict=True)):
            z_here = [z for z, q in zip(zs, self.level_index, strict=True) if q == p]
            parts = [feat_in[p], *([skip[p]] if skip is not None else []), *z_here]
            parts.append(tile(cond, side))
            if outputs:
                parts.insert(0, self.ups[p - 1](outputs[-1]))
            y, st.decoder[p] = stage(torch.cat(parts, dim=1), st.decoder[p])
            outputs.append(y)
        decoded = self.to_frame(outputs[-1])
        if self.composer is None:
            return torch.sigmoid(decoded)
        # The kernels come from the 1x1 stage, which reads the action and the latent.
        return self.composer(outputs[0].flatten(1), decoded, *frames)

    # --- training -------------------------------------------------------------------------

    def loss(
        self, batch: dict[str, torch.Tensor], step: int | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Teacher-forced negative ELBO over the future frames of the window.

        Args:
            batch: ``frames`` ``(B, L, C, H, W)``, ``states`` ``(B, L, S)``, ``actions``
                ``(B, L-1, A)``.
            step: The trainer's step, which the KL weight's warm-up reads.

        Returns:
            ``mse + beta * kl`` and the terms ``mse``, ``kl`` (nats per frame, all levels),
            ``kl_<l>`` (level ``l``'s share) and ``active_<l>`` (its active latent channels).
        """
        frames, states, actions = batch[FRAMES], batch[STATES], batch[ACTIONS]
        length = frames.shape[1]
        context = self.config.context_frames
        feats = self._encode(frames)  # [(B, L, C_s, s, s)]
        cond = action_state(states, actions, context, self.config.state_scale)  # (B, L-1, A+S)
        st = self._initial_states([f[:, :context] for f in feats])
        skip = [f[:, context - 1] for f in feats] if self.config.context_skip else None
        preds: list[torch.Tensor] = []
        kls: list[list[torch.Tensor]] = []
        for t in range(context, length):  # predict x_t from x_{t-1}
            feat_in, feat_out = [f[:, t - 1] for f in feats], [f[:, t] for f in feats]
            zs, kl = self._latents(feat_in, feat_out, cond[:, t - 1], st)
            pixels = (frames[:, t - 1], frames[:, context - 1])
            preds.append(self._decode(feat_in, zs, cond[:, t - 1], st, pixels, skip))
            kls.append(kl)
        pred = torch.stack(preds, dim=1)  # (B, T, C, H, W)
        mse = F.mse_loss(pred, frames[:, context:])
        terms = {"mse": float(mse.detach())}
        kl_total = mse.new_zeros((), dtype=torch.float32)
        for lv in range(len(self.level_index)):
            unit = torch.stack([k[lv] for k in kls], dim=1)  # (B, T, Z, s, s)
            kl_level = unit.flatten(2).sum(-1).mean()  # nats per frame
            kl_total = kl_total + kl_level
            # Fig. 4 of the paper: a channel is active when its mean KL passes the threshold.
            per_channel = unit.detach().mean(dim=(0, 1, 3, 4))  # (Z,)
            terms[f"kl_{lv}"] = float(kl_level.detach())
            terms[f"active_{lv}"] = float((per_channel > self.config.active_threshold).sum())
        terms["kl"] = float(kl_total.detach())
        return mse + self.beta(step) * kl_total, terms

    # --- imagination ----------------------------------------------------------------------

    def begin_rollout(
        self,
        context_frames: torch.Tensor,
        context_states: torch.Tensor,
        actions: torch.Tensor,
        num_samples: int,
        generator: torch.Generator | None,
    ) -> VRNNRollout:
        """Every recurrence's state from the context, repeated to ``B * num_samples`` rows.

        Arguments as :meth:`VideoModel.rollout`'s.
        """
        tc = context_frames.shape[1]

        def rep(x: torch.Tensor) -> torch.Tensor:
            return repeat_samples(x, num_samples)

        feats = self._encode(context_frames)
        states = self._initial_states(feats).map(rep)
        cond = rep(
            action_state(context_states, actions, tc, self.config.state_scale)
        )  # (B*N, Tc-1+T, A+S)
        feat_in = [rep(f[:, -1]) for f in feats]
        last_seen = rep(context_frames[:, -1])
        return VRNNRollout(
            cond=cond[:, tc - 1 :],
            states=states,
            feat_in=feat_in,
            skip=list(feat_in) if self.config.context_skip else None,
            previous=last_seen,
            last_seen=last_seen,
        )

    def imagine_step(
        self, state: VRNNRollout, k: int, generator: torch.Generator | None, feed_back: bool
    ) -> torch.Tensor:
        """One imagined frame: the prior sampled ancestrally, the prediction re-encoded."""
        c_k = state.cond[:, k]
        zs, _ = self._latents(state.feat_in, None, c_k, state.states, generator)
        x = self._decode(
            state.feat_in, zs, c_k, state.states, (state.previous, state.last_seen), state.skip
        )
        if feed_back:
            state.feat_in, state.previous = self.encoder(x), x
        return x  # (B*N, C, H, W)
