"""Video Pixel Network, action-conditioned, and its baseline without in-frame dependencies.

Kalchbrenner, van den Oord, Simonyan, Danihelka, Vinyals, Graves & Kavukcuoglu, "Video Pixel
Networks", ICML 2017 (seed 003). A video is a chain of discrete variables, frame by frame, pixel
by pixel in raster order, and within a pixel R, then G, then B:

    p(x) = prod_t prod_(i,j) p(x_tijB | x_<, x_tijR, x_tijG) p(x_tijG | x_<, x_tijR) p(x_tijR | x_<)

with ``x_<`` every earlier frame and the pixels above and left of ``(i, j)`` in frame ``t``.

* **Encoders** (resolution preserving): each observed frame ``F_t`` goes through a ``k x k``
  convolution to ``2c`` channels and ``encoder_blocks`` residual blocks at full resolution
  (optionally dilated, the dilation cycling through ``encoder_dilations``).
* **Convolutional LSTM** over the encoder outputs, also at full resolution: ``h_t`` summarises
  ``F_0 .. F_t``.
* **PixelCNN decoders**: frame ``F_(t+1)`` is fed (masked) to a stack of a mask-A
  ``input_kernel`` convolution and ``decoder_blocks`` residual blocks of mask-B convolutions;
  ``h_t`` reaches every layer through a ``1x1`` convolution. The masks split every layer's
  channels into three colour groups: a unit of group ``g`` sees the positions above and left,
  and at its own position the groups below ``g`` (mask A) or up to ``g`` (mask B), so the
  logits of colour ``g`` at ``(i, j)`` depend only on earlier sub-pixels. A ``1x1`` layer of
  ``top_channels`` and a softmax over ``levels`` intensity bins per colour end the decoder.

Blocks (``block``): the residual multiplicative block (``rmb``: ``1x1`` to ``c`` channels, two
multiplicative units ``MU(h) = g1 * tanh(g2 * h + g3 * u)`` whose gates and update are ``k x k``
convolutions of ``h``, ``1x1`` back to ``2c``, plus the input), or a ReLU block (``relu``: one
``k x k`` convolution and a ReLU between the two ``1x1``; the paper doubles their number to
equal the RMB's receptive field).

Conditioning, as the paper's Robotic Pushing (Sect. 6.1): every layer of the encoders and
decoders (the input convolution and every unit) adds a ``1x1`` convolution of a vector broadcast
to every position: for a context frame its action and robot state, for a predicted frame its
action only (the state is then zero, and so is a flag that says a state is present). The encoder
of ``F_t`` reads the action ``a_t`` applied to ``F_t``; the decoder of ``F_(t+1)`` reads the same
``a_t``, the action that leads to it.

Intensities are quantised to ``levels`` bins (256: the raw values, as the paper). Encoders and
decoders see the bin centres in [-1, 1], observed and sampled frames alike; a rollout returns bin
centres. The likelihood over the 256 raw values spreads each bin's probability evenly over its
``256 / levels`` values.

Sampling draws one uniform per sub-pixel per sample (all of a frame's at once, before any is
used) and inverts that sub-pixel's CDF. The naive sampler reruns the whole decoder for each of
the ``3 H W`` sub-pixels. The fast sampler (:class:`RasterConv`) computes, for each new
sub-pixel, only the decoder's activations at its own position, from cached activations of the
positions above and left (final once sampled, by the masks): the same sums, so the same
samples up to float rounding (identical in float64).

The paper's baseline (Sect. 3.3, the ``vpn_baseline`` presets: ``autoregressive: false``) has
the same encoders and LSTM, but its decoders are unmasked CNNs that do not see the frame they
predict: every sub-pixel of a frame is independent given the past, and a frame is sampled in
one pass. Checkpoints written when ``vpn_baseline`` was a class of its own load as ``vpn``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from foresight.batch import ACTIONS, FRAMES, STATES, frames_as
from foresight.errors import ConfigError
from foresight.models.base import OptimizerSpec, VideoModel, repeat_samples
from foresight.models.conditioning import ConditionedConfig
from foresight.models.layers import ConvLSTMCell
from foresight.models.registry import register_model
from foresight.models.vpn_net import COLOURS, BlockKind, FrameEncoder, LayerConds, PixelDecoder
from foresight.models.vpn_sampling import SAMPLERS, Sampler, sample_independent

# ----------------------------------------------------------------------------------------------
# Configs


@dataclass(frozen=True)
class VPNConfig(ConditionedConfig):
    """Video Pixel Network (Kalchbrenner et al., 2017).

    Attributes:
        channels: ``c``: width of the units inside a block; the residual stream between blocks
            has ``2c`` (the paper: ``c = 128``).
        encoder_blocks: Residual blocks per frame encoder (8 RMBs in the paper).
        decoder_blocks: Residual blocks per decoder (12 RMBs in the paper).
        block: ``rmb`` (residual multiplicative blocks) or ``relu`` (ReLU residual blocks).
        kernel: Side of the units' convolutions and of the encoders' input convolution (odd).
        input_kernel: Side of the decoder's first, mask-A, convolution of the frame (odd).
        encoder_dilations: Dilation cycle of the encoder blocks (block ``i`` uses entry
            ``i % len``): ``[1]`` none, ``[1, 2, 4, 8]`` the paper's dilated variant. The
            decoders are never dilated, as in the paper.
        lstm_channels: Channels of the convolutional LSTM (256 in the paper).
        top_channels: Channels of the layer before the softmax (1536 in the paper); a multiple
            of 3 (one group per colour).
        levels: Intensity bins of the softmax, a divisor of 256 (256: every raw value).
        autoregressive: True: PixelCNN decoders over the frame they predict (the VPN). False:
            unmasked decoders that do not see it (the paper's baseline).
        optimizer: ``adam`` or ``rmsprop`` (the paper's), with ``train.lr``.
        checkpoint_blocks: In training, keep only each encoder and decoder residual block's
            input for backward and recompute its activations (and its conditioning) there:
            about a third more compute for a fraction of the activation memory. The same loss
            and gradients; no effect on evaluation or sampling.
    """

    model: str = "vpn"
    channels: int = 32
    encoder_blocks: int = 2
    decoder_blocks: int = 2
    block: BlockKind = "rmb"
    kernel: int = 3
    input_kernel: int = 5
    encoder_dilations: tuple[int, ...] = (1,)
    lstm_channels: int = 64
    top_channels: int = 96
    levels: int = 256
    autoregressive: bool = True
    optimizer: Literal["adam", "rmsprop"] = "adam"
    checkpoint_blocks: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("encoder_blocks", "decoder_blocks", "lstm_channels", "context_frames"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        # Every masked layer needs at least one channel per colour group.
        if self.channels < COLOURS:
            raise ConfigError(f"channels must be at least {COLOURS}, got {self.channels}")
        if self.top_channels < COLOURS or self.top_channels % COLOURS:
            raise ConfigError(f"top_channels must be a multiple of 3, got {self.top_channels}")
        if not 2 <= self.levels <= 256 or 256 % self.levels:
            raise ConfigError(f"levels must divide 256 (2, 4, ..., 256), got {self.levels}")
        for name in ("kernel", "input_kernel"):
            if getattr(self, name) < 1 or getattr(self, name) % 2 == 0:
                raise ConfigError(f"{name} must be odd, got {getattr(self, name)}")
        if not self.encoder_dilations or min(self.encoder_dilations) < 1:
            raise ConfigError(
                f"encoder_dilations must be positive integers, got {list(self.encoder_dilations)}"
            )

    @property
    def bin_width(self) -> int:
        """Raw intensities per bin (``256 / levels``)."""
        return 256 // self.levels

    @property
    def cond_dim(self) -> int:
        """Size of the conditioning vector: action, robot state and a has-state flag."""
        return self.action_dim + self.state_dim + 1


@dataclass
class VPNRollout:
    """Where a VPN rollout stands, for ``M = B * N`` rows (:meth:`VideoPixelNetwork.imagine_step`).

    Attributes:
        sample: The frame sampler.
        h: ``(M, lstm, H, W)`` the LSTM output that conditions the next frame.
        lstm: The LSTM's ``(h, c)`` state.
        enc_v: ``(M, T - 1, cond_dim)`` the vector each future frame is encoded with.
        dec_v: ``(M, T, cond_dim)`` the vector each future frame is decoded with.
        values: ``(levels,)`` the network's input value of each bin.
    """

    sample: Sampler
    h: torch.Tensor
    lstm: tuple[torch.Tensor, torch.Tensor]
    enc_v: torch.Tensor
    dec_v: torch.Tensor
    values: torch.Tensor


# ----------------------------------------------------------------------------------------------
# The model


@register_model("vpn")
class VideoPixelNetwork(VideoModel):
    """Video Pixel Network of Kalchbrenner et al. (ICML 2017, seed 003), action-conditioned.

    Trained by softmax cross-entropy on the bins of the predicted frames, teacher-forced (the
    decoders see the true frame, masked; the encoders the true previous frames). Rollouts
    sample pixel by pixel with :func:`sample_fast`.
    """

    config_class = VPNConfig
    config: VPNConfig
    frame_dtype = torch.uint8

    def __init__(self, config: VPNConfig) -> None:
        super().__init__(config)
        c = config
        self.encoder = FrameEncoder(c)
        self.lstm = ConvLSTMCell(2 * c.channels, c.lstm_channels, 3)
        self.decoder = PixelDecoder(c)
        self.splits = self.decoder.cond_channels
        self.context = nn.Conv2d(c.lstm_channels, sum(self.splits), 1)
        self.vector = nn.Linear(c.cond_dim, sum(self.splits), bias=False)

    # --- inputs ---------------------------------------------------------------------------

    def bins(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 intensities -> bin indices (int64)."""
        return frames.long() // self.config.bin_width

    def bin_input(self, bins: torch.Tensor) -> torch.Tensor:
        """Bin indices -> the network's input: bin centres scaled to [-1, 1] (float32)."""
        return (bins.float() + 0.5) * (2.0 / self.config.levels) - 1.0

    def bin_centres(self, bins: torch.Tensor) -> torch.Tensor:
        """Bin indices -> intensities in [0, 1] at the bin centres (raw values when 256 bins)."""
        w = self.config.bin_width
        return (bins.float() * w + (w - 1) / 2) / 255.0

    def _encoder_vectors(
        self, actions: torch.Tensor, states: torch.Tensor, context: int
    ) -> torch.Tensor:
        """``(B, T, cond_dim)``: the vector each frame is encoded with.

        Frame ``t``'s action ``a_t``, and while it is observed (``t < context``) its scaled
        state and a flag 1; zeros for both after.

        Args:
            actions: ``(B, T, A)``; frame ``t`` is encoded with ``actions[:, t]``.
            states: ``(B, >=context, S)``; only the first ``context`` are read.
            context: Observed frames.
        """
        b, frames = actions.shape[:2]
        extra = actions.new_zeros(b, frames, self.config.state_dim + 1)
        seen = min(context, frames)
        extra[:, :seen, :-1] = states[:, :seen] * self.config.state_scale
        extra[:, :seen, -1] = 1.0
        return torch.cat([actions, extra], dim=-1)

    def _decoder_vectors(self, actions: torch.Tensor) -> torch.Tensor:
        """``(..., cond_dim)``: a predicted frame's vector, its action only (state and flag 0)."""
        extra = actions.new_zeros(*actions.shape[:-1], self.config.state_dim + 1)
        return torch.cat([actions, extra], dim=-1)

    def _decoder_conds(self, h: torch.Tensor, v: torch.Tensor) -> LayerConds:
        """Each decoder layer's conditioning, ``(N, C_l, H, W)``, computed as it is read.

        A ``1x1`` convolution of the LSTM output ``h`` ``(N, lstm, H, W)`` plus one of the
        frame's vector ``v`` ``(N, cond_dim)`` broadcast to every position.
        """
        kind = h.device.type
        if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
            # Cast the (float32) LSTM output once: each layer's convolution would otherwise
            # cast it again and save its own copy for backward.
            h = h.to(torch.get_autocast_dtype(kind))
        return LayerConds.split(h, self.context, self.vector(v), self.splits)

    # --- training -------------------------------------------------------------------------

    def logits(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits of every sub-pixel of the window's future frames.

        Args:
            batch: ``frames`` uint8 ``(B, L, C, H, W)``, ``states`` ``(B, L, S)``, ``actions``
                ``(B, L-1, A)``.

        Returns:
            Logits ``(B, T, 3, levels, H, W)`` and target bins ``(B, T, 3, H, W)``,
            ``T = L - context_frames``.
        """
        frames = frames_as(batch[FRAMES], torch.uint8)
        b, length = frames.shape[:2]
        tc = self.config.context_frames
        bins = self.bins(frames)
        x = self.bin_input(bins).to(self.context.weight.dtype)  # (B, L, 3, H, W)
        actions = batch[ACTIONS]  # (B, L-1, A): a_t encodes x_t and decodes x_(t+1)
        v = self._encoder_vectors(actions, batch[STATES], tc)
        enc = self.encoder(x[:, :-1].flatten(0, 1), v.flatten(0, 1))
        enc = enc.unflatten(0, (b, length - 1))
        state = None
        hs = []
        for t in range(length - 1):
            h, state = self.lstm(enc[:, t], state)
            if t >= tc - 1:
                hs.append(h)  # h_t conditions frame t + 1
        h = torch.stack(hs, dim=1).flatten(0, 1)  # (B*T, lstm, H, W)
        conds = self._decoder_conds(h, self._decoder_vectors(actions[:, tc - 1 :]).flatten(0, 1))
        logits = self.decoder(x[:, tc:].flatten(0, 1), conds)
        return logits.unflatten(0, (b, length - tc)), bins[:, tc:]

    def loss(
        self, batch: dict[str, torch.Tensor], step: int | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Softmax cross-entropy over the bins of every predicted sub-pixel.

        Args:
            batch: ``frames`` (uint8, or float in [0, 1]) ``(B, L, C, H, W)``, ``states``
                ``(B, L, S)``, ``actions`` ``(B, L-1, A)``.
            step: Unused (no schedules).

        Returns:
            The mean cross-entropy (nats per sub-pixel over the ``levels`` bins) and the term
            ``nll``: nats per dimension over the 256 raw intensities (see :meth:`nll_256`).
        """
        logits, target = self.logits(batch)
        ce = F.cross_entropy(logits.flatten(0, 1).transpose(1, 2).float(), target.flatten(0, 1))
        return ce, {"nll": self.nll_256(float(ce.detach()))}

    def nll_256(self, ce_bins: float) -> float:
        """Nats per dimension over the 256 raw intensities, from nats per dimension over bins.

        The model spreads a bin's probability evenly over its ``256 / levels`` raw values, so
        ``-log p(value) = -log p(bin) + log(256 / levels)``; equal when ``levels`` is 256.
        """
        return ce_bins + math.log(self.config.bin_width)

    def validation_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Teacher-forced measures of the predicted frames of a window.

        Returns:
            ``loss``: nats per sub-pixel over the ``levels`` bins; ``nll``: the negative
            log-likelihood in nats per dimension (sub-pixel) over the 256 raw intensities, the
            unit of the paper's Table 3.
        """
        loss, terms = self.loss(batch)
        return {"loss": float(loss.detach()), **terms}

    def optimizers(self) -> dict[str, OptimizerSpec]:
        """One optimizer over every parameter: Adam (``train.betas``) or RMSProp (the paper's)."""
        t = self.config.train
        if self.config.optimizer == "rmsprop":
            opt: torch.optim.Optimizer = torch.optim.RMSprop(
                self.parameters(), lr=t.lr, weight_decay=t.weight_decay
            )
        else:
            opt = torch.optim.Adam(
                self.parameters(), lr=t.lr, betas=t.betas, weight_decay=t.weight_decay
            )
        return {"model": OptimizerSpec.from_train(opt, t)}

    # --- imagination ----------------------------------------------------------------------

    def _sampler(self, name: str) -> Sampler:
        """The frame sampler ``name``; a decoder that does not see its frame has one way."""
        sampler = SAMPLERS.lookup(name)
        return sampler if self.config.autoregressive else sample_independent

    @torch.no_grad()
    def begin_rollout(
        self,
        context_frames: torch.Tensor,
        context_states: torch.Tensor,
        actions: torch.Tensor,
        num_samples: int,
        generator: torch.Generator | None,
        sampler: str = "fast",
    ) -> VPNRollout:
        """Encode the context frames (quantised to 8 bits, then bins) and run the LSTM on them.

        Arguments as :meth:`VideoModel.rollout`'s, and ``sampler``: ``fast``
        (:func:`sample_fast`) or ``naive`` (:func:`sample_naive`, the reference: ``3 H W``
        decoder passes per frame), which draw the same samples.
        """
        sample = self._sampler(sampler)
        b, tc = context_frames.shape[:2]
        dtype = next(self.parameters()).dtype
        x = self.bin_input(self.bins(frames_as(context_frames, torch.uint8))).to(dtype)
        v = self._encoder_vectors(actions, context_states, tc).to(dtype)
        dec_v = self._decoder_vectors(actions).to(dtype)
        enc = self.encoder(x.flatten(0, 1), v[:, :tc].flatten(0, 1)).unflatten(0, (b, tc))
        lstm = None
        for t in range(tc):
            h, lstm = self.lstm(enc[:, t], lstm)
        rep = partial(repeat_samples, num_samples=num_samples)
        return VPNRollout(
            sample=sample,
            h=rep(h),
            lstm=(rep(lstm[0]), rep(lstm[1])),
            enc_v=rep(v[:, tc:]),
            dec_v=rep(dec_v[:, tc - 1 :]),
            values=self.bin_input(torch.arange(self.config.levels, device=x.device)).to(dtype),
        )

    @torch.no_grad()
    def imagine_step(
        self, state: VPNRollout, k: int, generator: torch.Generator | None, feed_back: bool
    ) -> torch.Tensor:
        """Sample frame ``k`` from the LSTM's state, then encode it and advance the LSTM.

        Each frame draws its uniforms, one per sub-pixel per sample, before sampling it, so
        ``decode_steps`` and the sampler never change a frame.

        Returns:
            ``(B * N, C, H, W)`` bin centres in [0, 1].
        """
        m, _, height, width = state.h.shape
        u = torch.rand(
            m,
            height,
            width,
            COLOURS,
            generator=generator,
            device=state.h.device,
            dtype=state.values.dtype,
        )
        conds = self._decoder_conds(state.h, state.dec_v[:, k])
        bins = state.sample(self.decoder, conds, u, state.values)
        if feed_back:
            enc = self.encoder(state.values[bins], state.enc_v[:, k])
            state.h, state.lstm = self.lstm(enc, state.lstm)
        return self.bin_centres(bins)
