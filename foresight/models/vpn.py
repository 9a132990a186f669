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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal, overload

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from foresight.batch import ACTIONS, FRAMES, STATES, frames_as
from foresight.errors import ConfigError
from foresight.models.base import ModelConfig, OptimizerSpec, VideoModel
from foresight.models.layers import ConvLSTMCell
from foresight.models.registry import register_model
from foresight.registry import Registry

#: Colour sub-pixels per pixel (R, G, B), the groups of every masked layer.
COLOURS = 3

BlockKind = Literal["rmb", "relu"]
MaskType = Literal["A", "B"] | None

# ----------------------------------------------------------------------------------------------
# Configs


@dataclass(frozen=True)
class VPNConfig(ModelConfig):
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
        state_scale: Robot states are multiplied by this before conditioning, bringing the
            pusher's xy (metres, within +-0.25) to about [-1, 1] like the actions.
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
    state_scale: float = 4.0
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


# ----------------------------------------------------------------------------------------------
# Masked convolutions and blocks


def colour_groups(channels: int) -> torch.Tensor:
    """``(channels,)`` colour group (0 R, 1 G, 2 B) of each channel: three contiguous thirds."""
    return torch.arange(channels) * COLOURS // channels


class MaskedConv2d(nn.Conv2d):
    """A "same" convolution whose kernel is masked to keep the raster / colour order.

    Mask ``A`` (the decoder's first layer): a unit of colour group ``g`` sees the positions above
    and to the left, and at its own position the input groups ``< g``. Mask ``B`` (every later
    layer): groups ``<= g`` at its own position. ``None``: an ordinary convolution.

    Args:
        in_channels: Input channels (grouped by :func:`colour_groups`).
        out_channels: Output channels: ``parts`` consecutive parts, each grouped likewise.
        kernel_size: Odd side ``k``.
        mask: ``A``, ``B`` or None.
        dilation: Dilation (only unmasked convolutions are dilated).
        parts: Output parts (4 for a multiplicative unit's gates and update, whose channel
            ``i`` each pairs with input channel ``i``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        mask: MaskType = None,
        dilation: int = 1,
        parts: int = 1,
    ) -> None:
        pad = dilation * (kernel_size // 2)
        super().__init__(in_channels, out_channels, kernel_size, padding=pad, dilation=dilation)
        self.mask_type = mask
        m = torch.ones(out_channels, in_channels, kernel_size, kernel_size)
        if mask is not None:
            if dilation != 1:
                raise ValueError("masked convolutions are not dilated")
            c = kernel_size // 2
            m[:, :, c, c + 1 :] = 0
            m[:, :, c + 1 :] = 0
            out_g = colour_groups(out_channels // parts).repeat(parts)[:, None]
            in_g = colour_groups(in_channels)[None]
            m[:, :, c, c] = (in_g < out_g if mask == "A" else in_g <= out_g).float()
        self.register_buffer("mask", m, persistent=False)

    def masked_weight(self) -> torch.Tensor:
        """``(out, in, k, k)`` the kernel with the mask applied."""
        return self.weight * self.mask if self.mask_type is not None else self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in, H, W)`` -> ``(N, out, H, W)``."""
        return self._conv_forward(x, self.masked_weight(), self.bias)


class MultiplicativeUnit(nn.Module):
    """Multiplicative unit (Sect. 4.1): ``MU(h) = g1 * tanh(g2 * h + g3 * u)``.

    Three sigmoid gates and a tanh update, all ``k x k`` convolutions of ``h``; the
    conditioning is added to their pre-activations.

    Gate and update channels ``i`` belong to the colour group of ``h``'s channel ``i``, so the
    products keep the raster / colour order of masked convolutions.

    Args:
        channels: Channels of ``h`` (and of the output).
        kernel: Side of the convolutions.
        mask: ``B`` in decoders, None in encoders.
        dilation: Dilation of the convolutions (encoders).
    """

    def __init__(self, channels: int, kernel: int, mask: MaskType, dilation: int = 1) -> None:
        super().__init__()
        self.channels = channels
        # Output parts [g1 | g2 | g3 | u]: channel i of each multiplies h's channel i.
        self.conv = MaskedConv2d(channels, 4 * channels, kernel, mask, dilation, parts=4)

    @property
    def cond_channels(self) -> int:
        """Channels of the conditioning added to the pre-activations."""
        return 4 * self.channels

    def activate(self, pre: torch.Tensor, h: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """The output from pre-activations ``pre`` (``4c`` on ``dim``) and the input ``h``."""
        c = self.channels
        g1, g2, g3 = torch.sigmoid(pre.narrow(dim, 0, 3 * c)).chunk(3, dim)
        u = torch.tanh(pre.narrow(dim, 3 * c, c))
        return g1 * torch.tanh(torch.addcmul(g2 * h, g3, u))

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``(N, c, H, W)`` and conditioning ``(N, 4c, H, W)`` -> ``(N, c, H, W)``."""
        return self.activate(self.conv(h) + cond, h)


class ReLUUnit(nn.Module):
    """``relu(conv(h) + cond)``: the spatial layer of the ReLU residual block.

    Args:
        channels: Input and output channels.
        kernel: Side of the convolution.
        mask: ``B`` in decoders, None in encoders.
        dilation: Dilation of the convolution (encoders).
    """

    def __init__(self, channels: int, kernel: int, mask: MaskType, dilation: int = 1) -> None:
        super().__init__()
        self.channels = channels
        self.conv = MaskedConv2d(channels, channels, kernel, mask, dilation)

    @property
    def cond_channels(self) -> int:
        """Channels of the conditioning added to the pre-activation."""
        return self.channels

    def activate(self, pre: torch.Tensor, h: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """The unit's output from its pre-activation (``h`` is not used)."""
        return torch.relu(pre)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``(N, c, H, W)`` and conditioning ``(N, c, H, W)`` -> ``(N, c, H, W)``."""
        return self.activate(self.conv(h) + cond, h)


Unit = MultiplicativeUnit | ReLUUnit

#: The units of each block kind: RMBs stack two MUs (Sect. 4.2), ReLU blocks have one layer.
BLOCK_UNITS: dict[str, tuple[type[MultiplicativeUnit] | type[ReLUUnit], int]] = {
    "rmb": (MultiplicativeUnit, 2),
    "relu": (ReLUUnit, 1),
}


class ResidualBlock(nn.Module):
    """``h + W_up * units(W_down * h)``: ``1x1`` from ``2c`` to ``c``, the units, ``1x1`` back.

    Args:
        channels: ``c``.
        kind: ``rmb`` (two multiplicative units) or ``relu`` (one ReLU layer).
        kernel: Side of the units' convolutions.
        mask: ``B`` in decoders (the ``1x1`` convolutions are masked too), None in encoders.
        dilation: Dilation of the units (encoders).
    """

    def __init__(
        self, channels: int, kind: BlockKind, kernel: int, mask: MaskType, dilation: int = 1
    ) -> None:
        super().__init__()
        unit_class, count = BLOCK_UNITS[kind]
        self.down = MaskedConv2d(2 * channels, channels, 1, mask)
        self.units = nn.ModuleList(
            unit_class(channels, kernel, mask, dilation) for _ in range(count)
        )
        self.up = MaskedConv2d(channels, 2 * channels, 1, mask)

    @property
    def cond_channels(self) -> list[int]:
        """Conditioning channels of each unit."""
        return [u.cond_channels for u in self.units]

    def forward(self, h: torch.Tensor, conds: Sequence[torch.Tensor]) -> torch.Tensor:
        """``(N, 2c, H, W)`` and one conditioning per unit -> ``(N, 2c, H, W)``."""
        x = self.down(h)
        for unit, cond in zip(self.units, conds, strict=True):
            x = unit(x, cond)
        return h + self.up(x)


def run_blocks(
    blocks: Sequence[ResidualBlock],
    h: torch.Tensor,
    conds: Sequence[torch.Tensor],
    recompute: bool = False,
) -> torch.Tensor:
    """``h`` through ``blocks`` in turn, each unit with the next conditioning of ``conds``.

    ``recompute``: activation checkpointing per block. Backward then keeps each block's input
    only, and reruns the block (reading its conditioning again, which :class:`LayerConds`
    recomputes) to get the rest.
    """
    k = 0
    for block in blocks:
        n = len(block.units)
        if recompute:
            h = checkpoint(block, h, conds[k : k + n], use_reentrant=False)
        else:
            h = block(h, conds[k : k + n])
        k += n
    return h


class LayerConds(Sequence[torch.Tensor]):
    """Each decoder layer's conditioning, computed when that layer reads it.

    Layer ``l``'s is channels ``[a_l, b_l)`` of one ``1x1`` convolution of the LSTM output plus
    a per-frame vector: the slice of that convolution's weight is applied alone, so only one
    layer's ``(N, C_l, H, W)`` is alive at a time instead of every layer's at once (``sum C_l``
    is 12.5k channels per frame at paper size).

    Args:
        h: ``(N, lstm, H, W)`` the LSTM output.
        conv: The ``1x1`` convolution from ``lstm`` to ``sum C_l`` channels.
        vec: ``(N, sum C_l)`` the vector's term, added at every position.
        bounds: ``[a_l, b_l)`` of each layer, in order.
    """

    def __init__(
        self, h: torch.Tensor, conv: nn.Conv2d, vec: torch.Tensor, bounds: Sequence[tuple[int, int]]
    ) -> None:
        self.h, self.conv, self.vec, self.bounds = h, conv, vec, list(bounds)

    @classmethod
    def split(
        cls, h: torch.Tensor, conv: nn.Conv2d, vec: torch.Tensor, splits: Sequence[int]
    ) -> LayerConds:
        """The layers of ``splits`` channels each, consecutive from channel 0."""
        ends = list(accumulate(splits))
        return cls(h, conv, vec, zip([0, *ends[:-1]], ends, strict=True))

    def __len__(self) -> int:
        return len(self.bounds)

    @overload
    def __getitem__(self, index: int) -> torch.Tensor: ...

    @overload
    def __getitem__(self, index: slice) -> LayerConds: ...

    def __getitem__(self, index: int | slice) -> torch.Tensor | LayerConds:
        """Layer ``index``'s ``(N, C_l, H, W)``; a slice stays lazy."""
        if isinstance(index, slice):
            return LayerConds(self.h, self.conv, self.vec, self.bounds[index])
        a, b = self.bounds[index]
        bias = None if self.conv.bias is None else self.conv.bias[a:b]
        return F.conv2d(self.h, self.conv.weight[a:b], bias) + self.vec[:, a:b, None, None]


# ----------------------------------------------------------------------------------------------
# Encoder and decoder


class FrameEncoder(nn.Module):
    """Resolution-preserving CNN encoder of a frame (Sect. 3.1), conditioned at every layer.

    Args:
        config: The model config.
    """

    def __init__(self, config: VPNConfig) -> None:
        super().__init__()
        c = config.channels
        self.input = nn.Conv2d(COLOURS, 2 * c, config.kernel, padding=config.kernel // 2)
        dil = config.encoder_dilations
        self.blocks = nn.ModuleList(
            ResidualBlock(c, config.block, config.kernel, None, dil[i % len(dil)])
            for i in range(config.encoder_blocks)
        )
        self.splits = [2 * c, *(n for b in self.blocks for n in b.cond_channels)]
        self.cond = nn.Linear(config.cond_dim, sum(self.splits))
        self.recompute = config.checkpoint_blocks

    def forward(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Encode frames.

        Args:
            x: ``(N, 3, H, W)`` frames (bin centres in [-1, 1]).
            v: ``(N, cond_dim)`` conditioning vectors.

        Returns:
            ``(N, 2c, H, W)`` features.
        """
        conds = [t[:, :, None, None] for t in self.cond(v).split(self.splits, dim=1)]
        recompute = self.recompute and self.training and torch.is_grad_enabled()
        return run_blocks(self.blocks, self.input(x) + conds[0], conds[1:], recompute)


class PixelDecoder(nn.Module):
    """PixelCNN decoder (Sect. 3.2), or the baseline's unmasked CNN decoder (Sect. 3.3).

    Args:
        config: The model config (``autoregressive`` picks the kind).
    """

    def __init__(self, config: VPNConfig) -> None:
        super().__init__()
        c = config.channels
        self.levels = config.levels
        causal = config.autoregressive
        mask_b: MaskType = "B" if causal else None
        self.input = MaskedConv2d(COLOURS, 2 * c, config.input_kernel, "A") if causal else None
        self.blocks = nn.ModuleList(
            ResidualBlock(c, config.block, config.kernel, mask_b)
            for _ in range(config.decoder_blocks)
        )
        self.top = MaskedConv2d(2 * c, config.top_channels, 1, mask_b)
        self.out = MaskedConv2d(config.top_channels, COLOURS * config.levels, 1, mask_b)
        self.recompute = config.checkpoint_blocks

    @property
    def cond_channels(self) -> list[int]:
        """Conditioning channels of each layer: the input layer, then every unit."""
        return [self.top.in_channels, *(n for b in self.blocks for n in b.cond_channels)]

    def forward(self, x: torch.Tensor | None, conds: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits of every sub-pixel of a frame.

        Args:
            x: ``(N, 3, H, W)`` the frame in [-1, 1] (read only by the autoregressive decoder;
                masked, so a sub-pixel's own and later values never reach its logits).
            conds: One conditioning ``(N, C_l, H, W)`` per layer (see :attr:`cond_channels`),
                read in layer order (a :class:`LayerConds` computes each as it is read).

        Returns:
            ``(N, 3, levels, H, W)`` logits.
        """
        h = conds[0] if self.input is None else self.input(x) + conds[0]
        recompute = self.recompute and self.training and torch.is_grad_enabled()
        h = run_blocks(self.blocks, h, conds[1:], recompute)
        logits = self.out(torch.relu(self.top(torch.relu(h))))
        return logits.unflatten(1, (COLOURS, self.levels))


# ----------------------------------------------------------------------------------------------
# Sampling


def inverse_cdf(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Sample categorical bins by inverting their CDF at given uniforms.

    Args:
        logits: ``(..., L)`` unnormalised log-probabilities.
        u: ``(...)`` uniforms in [0, 1).

    Returns:
        ``(...)`` the smallest bin whose CDF exceeds ``u`` (int64).
    """
    cdf = torch.softmax(logits.to(u.dtype), dim=-1).cumsum(dim=-1)
    idx = torch.searchsorted(cdf, u.unsqueeze(-1), right=True).squeeze(-1)
    return idx.clamp_(max=logits.shape[-1] - 1)  # a CDF that rounds to below 1


class RasterConv:
    """One masked ``k x k`` convolution evaluated a position at a time, in raster order.

    The output at ``(i, j)`` sums the kernel over the rows above (computed for the whole row
    when it starts, from cached inputs), the positions left of ``(i, j)`` (once per pixel) and
    ``(i, j)`` itself (at every colour pass, from the input's current value). Masked taps
    (right of and below the centre) are zero and skipped. Inputs are cached as they become
    final (:meth:`commit`), in a zero-padded buffer, so borders add the zeros a padded
    convolution adds.

    Args:
        conv: A masked convolution (``A`` or ``B``, undilated).
        base: ``(N, out, H, W)`` what is added to the convolution (its bias and conditioning).
    """

    def __init__(self, conv: MaskedConv2d, base: torch.Tensor) -> None:
        k = conv.kernel_size[0]
        self.p = p = k // 2
        n, cout, height, width = base.shape
        w = conv.masked_weight().to(base.dtype)  # (out, in, k, k)
        cin = w.shape[1]
        self.w_above = w[:, :, :p].contiguous()  # (out, in, p, k)
        self.w_left = w[:, :, p, :p].permute(2, 1, 0).reshape(p * cin, cout)  # rows (tap, in)
        self.w_centre = w[:, :, p, p].t().contiguous()  # (in, out)
        # Position-major sums, so each position's (N, out) is contiguous: addmm is then
        # twice as fast on these small products (measured).
        base = base + conv.bias.to(base.dtype)[:, None, None]
        self.base = base.permute(2, 3, 0, 1).contiguous()  # (H, W, N, out)
        self.buf = base.new_zeros(n, height + p, width + 2 * p, cin)  # (N, H+p, W+2p, in)
        self.row = self.base[0]
        self.pix = self.row[0]
        self.i = 0

    def start_row(self, i: int) -> None:
        """Sum the rows above row ``i`` for every position of it."""
        self.i = i
        if self.p == 0:
            self.row = self.base[i]
            return
        rows = self.buf[:, i : i + self.p].permute(0, 3, 1, 2)  # image rows i-p .. i-1
        above = F.conv2d(rows, self.w_above)  # (N, out, 1, W)
        self.row = (above[:, :, 0].permute(2, 0, 1) + self.base[i]).contiguous()  # (W, N, out)

    def start_pixel(self, j: int) -> None:
        """Add the positions left of ``(i, j)`` (already final) to the row's sums."""
        if self.p == 0:
            self.pix = self.row[j]
            return
        left = self.buf[:, self.i + self.p, j : j + self.p].flatten(1)  # (N, p * in)
        self.pix = torch.addmm(self.row[j], left, self.w_left)

    def centre(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, out)`` the output at ``(i, j)`` given the input there ``x`` ``(N, in)``."""
        return torch.addmm(self.pix, x, self.w_centre)

    def commit(self, j: int, x: torch.Tensor) -> None:
        """Cache the final input at ``(i, j)`` ``(N, in)`` for later positions."""
        self.buf[:, self.i + self.p, j + self.p] = x


def _pointwise(conv: MaskedConv2d, dtype: torch.dtype, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``1x1`` masked convolution as ``(bias (n, out), weight (in, out))`` for ``addmm``.

    The bias is expanded to the ``n`` rows in memory: addmm is faster with a full one.
    """
    bias = conv.bias.to(dtype).expand(n, -1).contiguous()
    return bias, conv.masked_weight()[:, :, 0, 0].t().to(dtype)


Sampler = Callable[[PixelDecoder, Sequence[torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor]

#: Frame samplers of the autoregressive decoder, by name (``rollout(..., sampler=)``).
SAMPLERS = Registry[Sampler]("VPN sampler")


@SAMPLERS.register("fast")
@torch.no_grad()
def sample_fast(
    decoder: PixelDecoder, conds: Sequence[torch.Tensor], u: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """Sample a frame sub-pixel by sub-pixel, computing only what each one changes.

    For each pixel ``(i, j)`` and colour ``g``, every layer is evaluated at ``(i, j)`` only
    (:class:`RasterConv` for the ``k x k`` layers, matrix products for the ``1x1`` ones), and
    only colour ``g``'s logits. After the B pass the activations at ``(i, j)`` are final (the B
    value of a pixel reaches no unit at that pixel) and are cached for the later positions.

    Args:
        decoder: An autoregressive :class:`PixelDecoder`.
        conds: Its conditioning, one ``(N, C_l, H, W)`` per layer.
        u: ``(N, H, W, 3)`` uniforms, one per sub-pixel.
        values: ``(levels,)`` the decoder's input value of each bin.

    Returns:
        ``(N, 3, H, W)`` sampled bins (int64).
    """
    with torch.inference_mode():  # lighter than no_grad on the many tiny operations below
        return _sample_fast(decoder, conds, u, values)


def _sample_fast(
    decoder: PixelDecoder, conds: Sequence[torch.Tensor], u: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    if decoder.input is None:
        raise ValueError("fast sampling needs an autoregressive decoder")
    dtype = conds[0].dtype
    n, height, width = u.shape[:3]
    levels = decoder.levels
    first = RasterConv(decoder.input, conds[0])
    # The first layer's centre term, per colour: bin -> its input value times that colour's
    # centre weights (so a pass adds one looked-up row instead of a product).
    centre = [values.to(dtype)[:, None] * first.w_centre[g] for g in range(COLOURS - 1)]
    blocks, units = [], []
    k = 1
    for block in decoder.blocks:
        pairs = [
            (unit.activate, RasterConv(unit.conv, conds[k + m]))
            for m, unit in enumerate(block.units)
        ]
        blocks.append((*_pointwise(block.down, dtype, n), pairs, *_pointwise(block.up, dtype, n)))
        units += [conv for _, conv in pairs]
        k += len(block.units)
    raster = [first, *units]
    top_b, top_w = _pointwise(decoder.top, dtype, n)
    out_b, out_w = _pointwise(decoder.out, dtype, n)
    out_b, out_w = out_b.view(n, COLOURS, levels), out_w.view(-1, COLOURS, levels)
    out_b = [out_b[:, g].contiguous() for g in range(COLOURS)]
    out_w = [out_w[:, g].contiguous() for g in range(COLOURS)]
    values = values.to(dtype)
    bins = torch.zeros(n, height, width, COLOURS, dtype=torch.long, device=u.device)
    u = u.permute(1, 2, 3, 0).contiguous()  # (H, W, 3, N): each sub-pixel's draws contiguous
    for i in range(height):
        for conv in raster:
            conv.start_row(i)
        row: list[torch.Tensor] = []
        for j in range(width):
            for conv in raster:
                conv.start_pixel(j)
            u_ij = u[i, j]
            acc = first.pix  # the first layer's output given the sub-pixels known so far
            for g in range(COLOURS):
                h = acc
                inputs = []  # the input of every k x k unit at (i, j), cached after the B pass
                for down_b, down_w, pairs, up_b, up_w in blocks:
                    y = torch.addmm(down_b, h, down_w)
                    for activate, conv in pairs:
                        inputs.append(y)
                        y = activate(conv.centre(y), y)
                    h = torch.addmm(up_b, y, up_w).add_(h)
                top = torch.relu(torch.addmm(top_b, torch.relu(h), top_w))
                b = inverse_cdf(torch.addmm(out_b[g], top, out_w[g]), u_ij[g])
                row.append(b)
                if g < COLOURS - 1:
                    acc = acc + centre[g][b]
            first.commit(j, values[torch.stack(row[-COLOURS:], dim=1)])
            for conv, y in zip(units, inputs, strict=True):
                conv.commit(j, y)
        bins[:, i] = torch.stack(row, dim=1).view(n, width, COLOURS)
    return bins.permute(0, 3, 1, 2)


@SAMPLERS.register("naive")
@torch.no_grad()
def sample_naive(
    decoder: PixelDecoder,
    conds: Sequence[torch.Tensor],
    u: torch.Tensor,
    values: torch.Tensor,
    rows: int | None = None,
) -> torch.Tensor:
    """Sample a frame sub-pixel by sub-pixel, rerunning the whole decoder for each one.

    ``3 H W`` decoder passes per frame: the reference :func:`sample_fast` must match. Sub-pixels
    not sampled yet are 0 in the decoder's input (the masks hide them). Arguments and result as
    :func:`sample_fast`; ``rows`` stops after that many rows (the rest stay bin 0), for timing
    a sampler whose every step costs the same.
    """
    conds = list(conds)  # computed once for the 3 H W passes
    n, height, width = u.shape[:3]
    canvas = conds[0].new_zeros(n, COLOURS, height, width)
    values = values.to(canvas.dtype)
    bins = torch.zeros(n, COLOURS, height, width, dtype=torch.long, device=u.device)
    u = u.permute(1, 2, 3, 0).contiguous()  # (H, W, 3, N)
    for i in range(height if rows is None else rows):
        for j in range(width):
            for g in range(COLOURS):
                logits = decoder(canvas, conds)[:, g, :, i, j]  # (N, L)
                b = inverse_cdf(logits, u[i, j, g])
                bins[:, g, i, j] = b
                canvas[:, g, i, j] = values[b]
    return bins


@torch.no_grad()
def sample_independent(
    decoder: PixelDecoder, conds: Sequence[torch.Tensor], u: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """Sample every sub-pixel at once from a decoder that does not see the frame (baseline).

    Arguments and result as :func:`sample_fast` (``values`` is not needed).
    """
    logits = decoder(None, conds)  # (N, 3, L, H, W)
    return inverse_cdf(logits.permute(0, 3, 4, 1, 2), u).permute(0, 3, 1, 2)


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
        return {"model": OptimizerSpec(opt, t.lr, t.warmup_steps, t.grad_clip)}

    # --- imagination ----------------------------------------------------------------------

    def _sampler(self, name: str) -> Sampler:
        """The frame sampler ``name``; a decoder that does not see its frame has one way."""
        sampler = SAMPLERS.lookup(name)
        return sampler if self.config.autoregressive else sample_independent

    @torch.no_grad()
    def rollout(
        self,
        context_frames: torch.Tensor,
        context_states: torch.Tensor,
        actions: torch.Tensor,
        num_samples: int = 1,
        decode_steps: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
        sampler: str = "fast",
    ) -> torch.Tensor:
        """Imagine ``T`` future frames per action sequence, ``num_samples`` times each.

        Frame by frame: decode (sample) the next frame from the LSTM's state, then encode it
        with its action and advance the LSTM. Every frame before the last requested one is
        sampled (the next depends on it); later ones are not. Each frame draws its uniforms,
        one per sub-pixel per sample, before sampling it, so ``decode_steps`` and the sampler
        never change a frame.

        Args:
            context_frames: ``(B, Tc, C, H, W)`` in [0, 1] (quantised to 8 bits, then bins).
            context_states: ``(B, Tc, S)``.
            actions: ``(B, Tc - 1 + T, A)``.
            num_samples: Futures per sequence ``N``, batched.
            decode_steps: Future indices in ``[0, T)`` to return, in this order (all if None).
            generator: Source of the uniforms.
            sampler: ``fast`` (:func:`sample_fast`) or ``naive`` (:func:`sample_naive`, the
                reference: ``3 H W`` decoder passes per frame); the same samples.

        Returns:
            ``(B, N, len(decode_steps) or T, C, H, W)`` bin centres in [0, 1], in the dtype of
            ``context_frames``.
        """
        sample = self._sampler(sampler)
        _, steps = self.future_steps(context_frames, actions, decode_steps)
        b, tc, _, height, width = context_frames.shape
        n = num_samples
        dtype = next(self.parameters()).dtype
        device = context_frames.device

        def rep(x: torch.Tensor) -> torch.Tensor:  # (B, ...) -> (B*N, ...), sample-minor
            return x.repeat_interleave(n, dim=0)

        x = self.bin_input(self.bins(frames_as(context_frames, torch.uint8))).to(dtype)
        v = self._encoder_vectors(actions, context_states, tc).to(dtype)
        dec_v = self._decoder_vectors(actions).to(dtype)
        enc = self.encoder(x.flatten(0, 1), v[:, :tc].flatten(0, 1)).unflatten(0, (b, tc))
        state = None
        for t in range(tc):
            h, state = self.lstm(enc[:, t], state)
        h, state = rep(h), (rep(state[0]), rep(state[1]))
        v, dec_v = rep(v), rep(dec_v)
        values = self.bin_input(torch.arange(self.config.levels, device=device))
        wanted, horizon = set(steps), max(steps) + 1
        frames: dict[int, torch.Tensor] = {}
        for k in range(horizon):
            u = torch.rand(
                b * n, height, width, COLOURS, generator=generator, device=device, dtype=dtype
            )
            conds = self._decoder_conds(h, dec_v[:, tc - 1 + k])
            bins = sample(self.decoder, conds, u, values)
            if k in wanted:
                frames[k] = self.bin_centres(bins)
            if k < horizon - 1:
                enc = self.encoder(values.to(dtype)[bins], v[:, tc + k])
                h, state = self.lstm(enc, state)
        out = torch.stack([frames[k].to(context_frames.dtype) for k in steps], dim=1)
        return out.view(b, n, len(steps), *out.shape[2:])  # (B, N, T', C, H, W)
