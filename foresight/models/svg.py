"""Stochastic Video Generation (SVG), action-conditioned: learned prior, fixed prior, none.

Denton & Fergus, "Stochastic Video Generation with a Learned Prior", ICML 2018 (seed 004).
Per step ``t`` (frame ``t`` -> frame ``t+1``), with ``h_t = Enc(x_t)``:

    z_{t+1} ~ q(z | x_{1:t+1}) = PosteriorLSTM(h_{t+1})           (training, context)
    z_{t+1} ~ p(z | x_{1:t})   = PriorLSTM(h_t, a_t, s_t)         (SVG-LP, future)
    z_{t+1} ~ N(0, I)                                              (SVG-FP, future)
    g_{t+1} = PredictorLSTM(h_t, z_{t+1}, a_t, s_t)
    x^_{t+1} = Dec(g_{t+1}, skips of the last context frame)       (output: pixels)
    x^_{t+1} = CDNA(x_t moved by K kernels of g_{t+1}, x_1, Dec)   (output: cdna)

    loss = mean_t MSE(x^_{t+1}, x_{t+1}) + beta * mean_t KL(q(z_{t+1}) || p(z_{t+1}))

Training is teacher-forced over the whole window: every input is a true frame and every
``z`` comes from the posterior, so all three LSTMs run over the sequence in one call each.
A rollout feeds its own predictions back through the encoder, as seed 004 does.

Action conditioning (not in seed 004, which ignores BAIR's actions): the predictor and the
prior see the action ``a_t`` of every step. Robot state: future states are unknown when
planning, so a step sees the state of its input frame while that frame is observed (the
context), and the last observed state after that; the LSTMs infer where the pusher went from
the actions. Training uses the same rule, so training and rollout inputs agree.

``output: cdna`` (not in seed 004; Finn et al. 2016, as in SNA and SAVP) makes the decoder
predict where pixels of the previous frame move instead of redrawing them: see
:class:`~foresight.models.layers.CDNAComposer`.

``latent_side: s > 1`` is **SVG′** (Villegas et al., "High Fidelity Video Prediction with Large
Stochastic Recurrent Neural Networks", NeurIPS 2019; the model that planned best in VP2, Tian
et al. 2023): the encoder stops at an ``s x s`` map instead of a vector, and the three LSTMs
become convolutional LSTMs over that map
(:class:`~foresight.models.layers.ConvLSTMStack`), so ``h``, ``g`` and ``z`` are maps: the
recurrence and the latents keep *where* things are, which a vector bottleneck blurs. Actions
and states are tiled over the map. Everything else (losses, skips, rollouts) is unchanged:
maps travel flattened, channel-major.

Variants are classes: :class:`SVGDeterministic` is the shared core with no latent;
:class:`SVGFixedPrior` adds the posterior and a ``N(0, I)`` prior; :class:`SVGLearnedPrior`
replaces that prior by the prior LSTM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from foresight.batch import ACTIONS, FRAMES, STATES
from foresight.models.backbones import BACKBONES, BackboneName, check_latent_side
from foresight.models.base import VideoModel, repeat_samples, warmup_factor
from foresight.models.conditioning import ConditionedConfig, action_state
from foresight.models.layers import (
    CDNAComposer,
    ConvLSTMStack,
    GaussianConvLSTM,
    GaussianLSTM,
    LSTMStack,
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
class SVGDetConfig(ConditionedConfig):
    """Deterministic SVG: encoder, predictor LSTM, decoder.

    Attributes:
        backbone: Frame encoder/decoder (:data:`~foresight.models.backbones.BACKBONES`):
            ``dcgan`` (the default, and every checkpoint saved before this field existed) or
            ``vgg``, the authors' BAIR one (``--model vgg``, the ``paper`` presets).
        channels: Width of the first encoder level (doubles per level; 64 in the paper).
        g_dim: Frame embedding size (128 in the paper); its channels with ``latent_side > 1``.
        rnn_size: Width of every LSTM (256 in the paper); channels of every ConvLSTM.
        predictor_layers: Layers of the frame-predictor LSTM (2 in the paper).
        output: How a frame is made: ``pixels`` (seed 004: the decoder draws it) or ``cdna``
            (the decoder's masks mix copies of the previous frame moved by predicted kernels,
            the first context frame and a drawn frame; Finn et al. 2016).
        cdna_kernels: Moved copies of the previous frame (``output: cdna``).
        cdna_kernel_size: Side of each kernel; the largest motion per step is half of it.
        latent_side: 1 (seed 004): the frame embedding, the LSTMs and the latent are vectors.
            ``s`` (4, 8, ... up to half the image): SVG′, all three are ``s x s`` maps and
            the LSTMs are ConvLSTMs (the ``svg_prime`` presets).
    """

    model: str = "svg_det"
    backbone: BackboneName = "dcgan"
    channels: int = 32
    g_dim: int = 128
    rnn_size: int = 256
    predictor_layers: int = 2
    output: Literal["pixels", "cdna"] = "pixels"
    cdna_kernels: int = 4
    cdna_kernel_size: int = 5
    latent_side: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        conv_levels(self.image_size)  # raises for sizes neither backbone can take
        check_latent_side(self.image_size, self.latent_side)
        for name in ("channels", "g_dim", "rnn_size", "predictor_layers", "context_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        check_cdna(self.cdna_kernels, self.cdna_kernel_size)


@dataclass(frozen=True)
class SVGFPConfig(SVGDetConfig):
    """SVG with a fixed ``N(0, I)`` prior: adds the posterior LSTM and the latent.

    Attributes:
        z_dim: Latent size per step (64 in the paper); its channels with ``latent_side > 1``.
        posterior_layers: Layers of the posterior LSTM (1 in the paper).
        beta: Weight of the KL term (1e-4 in the paper).
        beta_warmup_steps: Training steps over which the KL weight ramps linearly from
            ``beta / beta_warmup_steps`` to ``beta`` (0 in the paper: constant beta).
    """

    model: str = "svg_fp"
    z_dim: int = 16
    posterior_layers: int = 1
    beta: float = 1e-4
    beta_warmup_steps: int = 0


@dataclass(frozen=True)
class SVGLPConfig(SVGFPConfig):
    """SVG with a learned prior: adds the prior LSTM.

    Attributes:
        prior_layers: Layers of the prior LSTM (1 in the paper).
    """

    model: str = "svg_lp"
    prior_layers: int = 1


@dataclass
class SVGRollout:
    """Where an SVG rollout stands, for ``M = B * N`` rows (:meth:`SVGDeterministic.imagine_step`).

    Attributes:
        cond: ``(M, T, A+S)`` action and observed state of each future step.
        h_in: ``(M, 1, G)`` embedding of the next step's input frame.
        skips: Decoder skips of the last context frame, each ``(M, ...)``.
        previous: ``(M, C, H, W)`` the frame being predicted from (``cdna`` moves it).
        background: ``(M, C, H, W)`` the first context frame (``cdna``'s fallback).
        pred_state: The predictor LSTM's state.
        prior_state: The prior LSTM's state (None without one).
    """

    cond: torch.Tensor
    h_in: torch.Tensor
    skips: list[torch.Tensor]
    previous: torch.Tensor
    background: torch.Tensor
    pred_state: LSTMState | None
    prior_state: LSTMState | None


# ----------------------------------------------------------------------------------------------
# The shared core (and the deterministic model)


@register_model("svg_det")
class SVGDeterministic(VideoModel):
    """Deterministic SVG baseline of Denton & Fergus (2018, seed 004), action-conditioned.

    The predictor sees ``[h_t, z_{t+1}, a_t, s_t]``; here ``z`` is empty. ``s_t`` is the
    robot state of frame ``t`` while that frame is observed and the last observed state after
    it (never a true future state, which a planner cannot know). Subclasses add the latent by
    overriding the three ``_latent_*`` hooks, :attr:`z_dim` and :meth:`beta`.

    Shapes below write ``G`` and ``Z`` for the flat sizes per step: ``g_dim * s * s`` and
    ``z_dim * s * s`` with ``s = latent_side`` (maps flattened channel-major).
    """

    config_class = SVGDetConfig
    config: SVGDetConfig

    def __init__(self, config: SVGDetConfig) -> None:
        super().__init__(config)
        c = config
        self.cond_dim = c.action_dim + c.state_dim
        backbone = BACKBONES.lookup(c.backbone)
        side = c.latent_side
        self.encoder = backbone.encoder(c.image_size, 3, c.channels, c.g_dim, latent_side=side)
        self.composer = (
            CDNAComposer(c.g_dim * side * side, c.cdna_kernels, c.cdna_kernel_size, 3)
            if c.output == "cdna"
            else None
        )
        self.decoder = backbone.decoder(
            c.image_size,
            3 if self.composer is None else self.composer.decoder_channels,
            c.channels,
            c.g_dim,
            squash=self.composer is None,
            frame_channels=3,
            latent_side=side,
        )
        self.predictor = self._lstm(
            c.g_dim + self.z_dim, self.cond_dim, c.predictor_layers, c.g_dim
        )

    @property
    def z_dim(self) -> int:
        """Latent channels per step (none here); ``Z`` is ``z_dim * latent_side**2``."""
        return 0

    @property
    def z_size(self) -> int:
        """``Z``: the flat latent size per step."""
        return self.z_dim * self.config.latent_side**2

    def _lstm(self, maps: int, vector: int, layers: int, out: int) -> LSTMStack | ConvLSTMStack:
        """A recurrence of ``rnn_size`` reading maps (flat) then a vector: seed 004's or SVG′'s.

        Args:
            maps: Channels of the input's map part (its size with ``latent_side`` 1).
            vector: Size of the input's vector part (actions and states).
            layers: Stacked layers.
            out: Channels (size) of the read-out.
        """
        c = self.config
        if c.latent_side == 1:
            return LSTMStack(maps + vector, c.rnn_size, layers, out)
        return ConvLSTMStack(maps, vector, c.rnn_size, layers, out, c.latent_side)

    def _gaussian_lstm(
        self, maps: int, vector: int, layers: int
    ) -> GaussianLSTM | GaussianConvLSTM:
        """:meth:`_lstm` with a Gaussian read-out of ``z_dim`` (channels)."""
        c = self.config
        if c.latent_side == 1:
            return GaussianLSTM(maps + vector, c.rnn_size, layers, self.z_dim)
        return GaussianConvLSTM(maps, vector, c.rnn_size, layers, self.z_dim, c.latent_side)

    def beta(self, step: int | None = None) -> float:
        """Weight of the KL term at training step ``step`` (no KL here)."""
        return 0.0

    # --- latent hooks ---------------------------------------------------------------------

    def _latent_train(
        self, h_in: torch.Tensor, h_out: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Latents of a teacher-forced window and their KL.

        Args:
            h_in: ``(B, T, G)`` embeddings of the input frames ``x_t``.
            h_out: ``(B, T, G)`` embeddings of the target frames ``x_{t+1}``.
            cond: ``(B, T, A+S)`` action and state of each step.

        Returns:
            ``z`` ``(B, T, Z)`` and the KL ``(B, T)``, or None for a model without latent.
        """
        return h_in.new_zeros(*h_in.shape[:2], 0), None

    def _latent_context(
        self,
        h_in: torch.Tensor,
        h_out: torch.Tensor,
        cond: torch.Tensor,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, LSTMState | None]:
        """Latents of the observed transitions of a rollout, and the prior state after them.

        Args:
            h_in: ``(M, Tc-1, G)`` embeddings of context frames ``0 .. Tc-2``.
            h_out: ``(M, Tc-1, G)`` embeddings of context frames ``1 .. Tc-1``.
            cond: ``(M, Tc-1, A+S)``.
            generator: Source of the sampling noise.

        Returns:
            ``z`` ``(M, Tc-1, Z)`` and the recurrent state of the prior (None if it has none).
        """
        return h_in.new_zeros(*h_in.shape[:2], 0), None

    def _latent_sample(
        self,
        h_in: torch.Tensor,
        cond: torch.Tensor,
        state: LSTMState | None,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, LSTMState | None]:
        """Sample the latent of one imagined step from the prior.

        Args:
            h_in: ``(M, 1, G)`` embedding of the step's input frame.
            cond: ``(M, 1, A+S)``.
            state: The prior's recurrent state.
            generator: Source of the sampling noise.

        Returns:
            ``z`` ``(M, 1, Z)`` and the prior's new state.
        """
        return h_in.new_zeros(*h_in.shape[:2], 0), None

    # --- frames ---------------------------------------------------------------------------

    def _decode(
        self,
        g: torch.Tensor,
        skips: list[torch.Tensor],
        previous: torch.Tensor,
        background: torch.Tensor,
    ) -> torch.Tensor:
        """The next frames ``(N, C, H, W)`` in [0, 1] from predictor outputs.

        Args:
            g: ``(N, G)`` predictor outputs (after tanh).
            skips: Decoder skips, each with batch ``N``.
            previous: ``(N, C, H, W)`` the frames being predicted from (moved by ``cdna``).
            background: ``(N, C, H, W)`` the first context frames (``cdna``'s fallback).
        """
        out = self.decoder(g, skips)
        if self.composer is None:
            return out
        return self.composer(g, out, previous, background)

    # --- encoding -------------------------------------------------------------------------

    def _encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(B, T, C, H, W)`` -> embeddings ``(B, T, G)`` and level features ``(B, T, ...)``."""
        b, t = frames.shape[:2]
        h, skips = self.encoder(frames.flatten(0, 1))
        return h.view(b, t, -1), [s.view(b, t, *s.shape[1:]) for s in skips]

    # --- training -------------------------------------------------------------------------

    def loss(
        self, batch: dict[str, torch.Tensor], step: int | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Teacher-forced reconstruction (+ beta * KL) over every transition of the window.

        Args:
            batch: ``frames`` ``(B, L, C, H, W)``, ``states`` ``(B, L, S)``, ``actions``
                ``(B, L-1, A)``.
            step: The trainer's step, which the KL weight's warm-up reads (seed 004 keeps
                beta constant: ``beta_warmup_steps: 0``).

        Returns:
            ``mse + beta * kl`` and the terms ``mse`` (and ``kl`` for stochastic models).
        """
        frames, states, actions = batch[FRAMES], batch[STATES], batch[ACTIONS]
        b, length = frames.shape[:2]
        context = self.config.context_frames
        h, skips = self._encode(frames)  # (B, L, G), [(B, L, w_i, s_i, s_i)]
        cond = action_state(states, actions, context, self.config.state_scale)  # (B, L-1, A+S)
        z, kl = self._latent_train(h[:, :-1], h[:, 1:], cond)  # (B, L-1, Z), (B, L-1) | None
        g, _ = self.predictor(torch.cat([h[:, :-1], z, cond], dim=-1))
        g = torch.tanh(g)  # (B, L-1, G), in the encoder's range as in seed 004
        # Skips come from the input frame while it is observed, then from the last context
        # frame: the same frames a rollout can use.
        src = torch.arange(length - 1, device=frames.device).clamp(max=context - 1)
        background = frames[:, :1].expand(-1, length - 1, -1, -1, -1)
        pred = self._decode(
            g.flatten(0, 1),
            [s[:, src].flatten(0, 1) for s in skips],
            frames[:, :-1].flatten(0, 1),
            background.flatten(0, 1),
        )
        pred = pred.view(b, length - 1, *frames.shape[2:])  # (B, L-1, C, H, W)
        mse = F.mse_loss(pred, frames[:, 1:])
        if kl is None:
            return mse, {"mse": float(mse.detach())}
        kl_mean = kl.mean()
        total = mse + self.beta(step) * kl_mean
        return total, {"mse": float(mse.detach()), "kl": float(kl_mean.detach())}

    # --- imagination ----------------------------------------------------------------------

    def begin_rollout(
        self,
        context_frames: torch.Tensor,
        context_states: torch.Tensor,
        actions: torch.Tensor,
        num_samples: int,
        generator: torch.Generator | None,
    ) -> SVGRollout:
        """Encode the context and warm the LSTMs up on its transitions (posterior latents).

        The batch is repeated to ``B * num_samples`` rows once, after encoding the context.
        Arguments as :meth:`VideoModel.rollout`'s.
        """
        tc = context_frames.shape[1]
        cond = action_state(
            context_states, actions, tc, self.config.state_scale
        )  # (B, Tc-1+T, A+S)
        h_ctx, skips_ctx = self._encode(context_frames)  # (B, Tc, G), [(B, Tc, ...)]
        h_ctx, cond = repeat_samples(h_ctx, num_samples), repeat_samples(cond, num_samples)
        pred_state: LSTMState | None = None
        prior_state: LSTMState | None = None
        if tc > 1:
            z, prior_state = self._latent_context(
                h_ctx[:, :-1], h_ctx[:, 1:], cond[:, : tc - 1], generator
            )
            _, pred_state = self.predictor(torch.cat([h_ctx[:, :-1], z, cond[:, : tc - 1]], dim=-1))
        return SVGRollout(
            cond=cond[:, tc - 1 :],
            h_in=h_ctx[:, -1:],
            skips=[repeat_samples(s[:, -1], num_samples) for s in skips_ctx],
            previous=repeat_samples(context_frames[:, -1], num_samples),
            background=repeat_samples(context_frames[:, 0], num_samples),
            pred_state=pred_state,
            prior_state=prior_state,
        )

    def imagine_step(
        self, state: SVGRollout, k: int, generator: torch.Generator | None, feed_back: bool
    ) -> torch.Tensor:
        """One imagined frame: a latent from the prior, the prediction re-encoded as input.

        Seed 004 feeds predictions back through the encoder, so frames before the last
        requested one are decoded even when not requested.
        """
        c_k = state.cond[:, k : k + 1]  # (B*N, 1, A+S)
        z, state.prior_state = self._latent_sample(state.h_in, c_k, state.prior_state, generator)
        g, state.pred_state = self.predictor(
            torch.cat([state.h_in, z, c_k], dim=-1), state.pred_state
        )
        x = self._decode(torch.tanh(g[:, 0]), state.skips, state.previous, state.background)
        if feed_back:
            state.h_in = self.encoder(x)[0][:, None]
            state.previous = x
        return x  # (B*N, C, H, W)


# ----------------------------------------------------------------------------------------------
# Stochastic variants


@register_model("svg_fp")
class SVGFixedPrior(SVGDeterministic):
    """SVG-FP of Denton & Fergus (2018, seed 004): posterior LSTM, fixed ``N(0, I)`` prior."""

    config_class = SVGFPConfig
    config: SVGFPConfig

    def __init__(self, config: SVGFPConfig) -> None:
        super().__init__(config)
        self.posterior = self._gaussian_lstm(config.g_dim, 0, config.posterior_layers)

    @property
    def z_dim(self) -> int:
        """Latent channels per step (its size with ``latent_side`` 1)."""
        return self.config.z_dim

    def beta(self, step: int | None = None) -> float:
        """Weight of the KL term at training step ``step`` (its final value when None)."""
        return self.config.beta * warmup_factor(step, self.config.beta_warmup_steps)

    def _prior(
        self, h_in: torch.Tensor, cond: torch.Tensor, state: LSTMState | None
    ) -> tuple[torch.Tensor, torch.Tensor, LSTMState | None]:
        """Prior ``(mu, logvar)`` ``(M, T, Z)`` of the next latents and its new state.

        Here the fixed ``N(0, I)`` (zeros that broadcast over the batch), with no state.
        """
        zero = h_in.new_zeros(1, 1, self.z_size)
        return zero, zero, None

    def _latent_train(
        self, h_in: torch.Tensor, h_out: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        mu_q, logvar_q, _ = self.posterior(h_out)  # (B, T, Z) from q(z_{t+1} | x_{1:t+1})
        mu_p, logvar_p, _ = self._prior(h_in, cond, None)  # p(z_{t+1} | x_{1:t})
        z = gaussian_sample(mu_q, logvar_q)  # training noise: the global, seeded RNG
        return z, gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)

    def _latent_context(
        self,
        h_in: torch.Tensor,
        h_out: torch.Tensor,
        cond: torch.Tensor,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, LSTMState | None]:
        mu_q, logvar_q, _ = self.posterior(h_out)
        _, _, state = self._prior(h_in, cond, None)
        return gaussian_sample(mu_q, logvar_q, generator), state

    def _latent_sample(
        self,
        h_in: torch.Tensor,
        cond: torch.Tensor,
        state: LSTMState | None,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, LSTMState | None]:
        mu_p, logvar_p, state = self._prior(h_in, cond, state)
        shape = (*h_in.shape[:2], self.z_size)
        return gaussian_sample(mu_p.expand(shape), logvar_p.expand(shape), generator), state


@register_model("svg_lp")
class SVGLearnedPrior(SVGFixedPrior):
    """SVG-LP of Denton & Fergus (2018, seed 004): prior LSTM ``p(z_{t+1} | x_{1:t}, a_t, s_t)``.

    The prior sees the same input as the predictor, minus the latent: it learns where the
    uncertainty is (e.g. contact) given the action about to be taken.
    """

    config_class = SVGLPConfig
    config: SVGLPConfig

    def __init__(self, config: SVGLPConfig) -> None:
        super().__init__(config)
        self.prior = self._gaussian_lstm(config.g_dim, self.cond_dim, config.prior_layers)

    def _prior(
        self, h_in: torch.Tensor, cond: torch.Tensor, state: LSTMState | None
    ) -> tuple[torch.Tensor, torch.Tensor, LSTMState | None]:
        return self.prior(torch.cat([h_in, cond], dim=-1), state)
