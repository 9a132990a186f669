"""The Video Pixel Network's layers: masked convolutions, blocks, frame encoder, PixelCNN decoder.

Kalchbrenner et al., "Video Pixel Networks", ICML 2017 (seed 003); the model that puts them
together, and what each layer does, is :mod:`foresight.models.vpn`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, Literal, overload

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

if TYPE_CHECKING:
    from foresight.models.vpn import VPNConfig

#: Colour sub-pixels per pixel (R, G, B), the groups of every masked layer.
COLOURS = 3

BlockKind = Literal["rmb", "relu"]
MaskType = Literal["A", "B"] | None

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
