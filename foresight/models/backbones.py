"""SVG's frame backbones: conv encoders to a vector, and decoders that read their skips.

Two frame backbones of SVG (Denton & Fergus, 2018, seed 004), chosen by name in
:data:`BACKBONES`; both halve the image level by level until it is ``4x4``, then take it to a
vector with a ``4x4`` valid convolution, and both decoders mirror their encoder and take its
per-level feature maps as skip connections:

* ``dcgan`` (Radford et al., 2016): one ``4x4`` stride-2 convolution per level; the decoder
  also sees (our addition) the skip frame's own pixels before its last ``3x3`` convolution.
* ``vgg``: the authors' BAIR backbone, blocks of ``3x3`` convolutions (2, 2, then 3 per level)
  separated by ``2x2`` max-pooling; the decoder upsamples by nearest neighbour. About twice the
  parameters of ``dcgan`` at the same widths.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import nn

from foresight.models.layers import conv_levels
from foresight.registry import Registry


def level_widths(image_size: int, channels: int) -> list[int]:
    """Channels of each encoder level: ``channels`` doubling per level (64, 128, 256, 512)."""
    return [channels * 2**i for i in range(conv_levels(image_size))]


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 4, 2, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2, inplace=True),
    )


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2, inplace=True),
    )


class ConvEncoder(nn.Module):
    """DCGAN frame encoder: ``(N, C, S, S)`` -> a ``(N, out_dim)`` vector and skip features.

    Args:
        image_size: Frame side ``S`` (a power of two >= 8).
        in_channels: Frame channels ``C``.
        channels: Width of the first level; each further level doubles it.
        out_dim: Size of the frame embedding.
    """

    def __init__(self, image_size: int, in_channels: int, channels: int, out_dim: int) -> None:
        super().__init__()
        widths = level_widths(image_size, channels)
        self.levels = nn.ModuleList(
            _down(cin, cout) for cin, cout in zip([in_channels, *widths[:-1]], widths, strict=True)
        )
        # tanh bounds the embedding, as in seed 004's encoder, so the LSTMs see inputs of a
        # fixed scale whether a frame is real or one the model decoded itself.
        self.head = nn.Sequential(
            nn.Conv2d(widths[-1], out_dim, 4, 1, 0, bias=False), nn.BatchNorm2d(out_dim), nn.Tanh()
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encode frames.

        Args:
            x: ``(N, C, S, S)`` frames in [0, 1].

        Returns:
            The embedding ``(N, out_dim)`` and the skips, finest first: the frame itself
            ``(N, C, S, S)``, then the feature map of every level ``i``:
            ``(N, channels * 2**i, S / 2**(i+1), S / 2**(i+1))``.
        """
        skips = [x]
        for level in self.levels:
            x = level(x)
            skips.append(x)
        return self.head(x).flatten(1), skips


class ConvDecoder(nn.Module):
    """DCGAN frame decoder with U-Net skips: ``(N, in_dim)`` + skips -> ``(N, C, S, S)``.

    Args:
        image_size: Frame side ``S``.
        out_channels: Frame channels ``C``.
        channels: Width of the encoder's first level (the skips must come from a
            :class:`ConvEncoder` of the same ``image_size`` and ``channels``).
        in_dim: Size of the vector to decode.
        squash: End with a sigmoid (frames in [0, 1]); False returns raw values, for a head
            that composes the frame itself (:class:`CDNAComposer`).
        frame_channels: Channels of the skip frame (default: ``out_channels``).
    """

    def __init__(
        self,
        image_size: int,
        out_channels: int,
        channels: int,
        in_dim: int,
        squash: bool = True,
        frame_channels: int | None = None,
    ) -> None:
        super().__init__()
        widths = level_widths(image_size, channels)
        frame_channels = out_channels if frame_channels is None else frame_channels
        self.head = nn.Sequential(
            nn.ConvTranspose2d(in_dim, widths[-1], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[-1]),
            nn.LeakyReLU(0.2, inplace=True),
        )
        # Level i takes its input concatenated with the encoder's level-i features (2 * w_i
        # channels) and upsamples to level i-1's width; the last level produces the frame.
        self.levels = nn.ModuleList(
            _up(2 * widths[i], widths[i - 1]) for i in range(len(widths) - 1, 0, -1)
        )
        # Beyond DCGAN: the last layer also sees the skip frame's own pixels. Objects of a few
        # pixels (small frames) blur when they must be rebuilt from half-resolution features;
        # with the pixels at hand, whatever does not move is copied exactly. The full-resolution
        # features stay narrow: that is where width costs most, and they mostly say where to
        # depart from the copied pixels.
        fine = max(8, widths[0] // 4)
        self.up = _up(2 * widths[0], fine)
        self.out = nn.Sequential(
            nn.Conv2d(fine + frame_channels, out_channels, 3, 1, 1),
            nn.Sigmoid() if squash else nn.Identity(),
        )

    def forward(self, g: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """Decode vectors to frames.

        Args:
            g: ``(N, in_dim)`` vectors.
            skips: The encoder's skips (frame, then level features, finest first), each with
                batch ``N``.

        Returns:
            ``(N, C, S, S)`` frames in [0, 1].
        """
        frame, *features = skips
        x = self.head(g[:, :, None, None])  # (N, w_last, 4, 4)
        for level, skip in zip(self.levels, features[:0:-1], strict=True):
            x = level(torch.cat([x, skip], dim=1))  # doubles the side
        x = self.up(torch.cat([x, features[0]], dim=1))  # (N, fine, S, S)
        return self.out(torch.cat([x, frame], dim=1))


def vgg_depths(levels: int) -> list[int]:
    """``3x3`` convolutions per level of the VGG backbone: 2, 2, then 3 (VGG-16's first blocks)."""
    return [2 if i < 2 else 3 for i in range(levels)]


def _vgg_layer(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2, inplace=True),
    )


class VGGEncoder(nn.Module):
    """VGG frame encoder: ``(N, C, S, S)`` -> a ``(N, out_dim)`` vector and skip features.

    Level ``i`` runs :func:`vgg_depths` ``3x3`` convolutions of ``channels * 2**i`` at side
    ``S / 2**i`` and is followed by a ``2x2`` max-pool; at ``S = 64`` and ``channels = 64`` the
    levels are 64,64 | 128,128 | 256,256,256 | 512,512,512 as in seed 004's BAIR model, and at
    ``S = 32`` the 512-wide level is dropped.

    Args:
        image_size: Frame side ``S`` (a power of two >= 8).
        in_channels: Frame channels ``C``.
        channels: Width of the first level; each further level doubles it.
        out_dim: Size of the frame embedding.
    """

    def __init__(self, image_size: int, in_channels: int, channels: int, out_dim: int) -> None:
        super().__init__()
        widths = level_widths(image_size, channels)
        ins = [in_channels, *widths[:-1]]
        self.levels = nn.ModuleList(
            nn.Sequential(*(_vgg_layer(cin if j == 0 else w, w) for j in range(depth)))
            for cin, w, depth in zip(ins, widths, vgg_depths(len(widths)), strict=True)
        )
        self.pool = nn.MaxPool2d(2)
        # tanh bounds the embedding as in the DCGAN encoder (see ConvEncoder).
        self.head = nn.Sequential(
            nn.Conv2d(widths[-1], out_dim, 4, 1, 0, bias=False), nn.BatchNorm2d(out_dim), nn.Tanh()
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encode frames.

        Args:
            x: ``(N, C, S, S)`` frames in [0, 1].

        Returns:
            The embedding ``(N, out_dim)`` and the skips, finest first: the output of every
            level ``i`` before its pooling, ``(N, channels * 2**i, S / 2**i, S / 2**i)``.
        """
        skips = []
        for i, level in enumerate(self.levels):
            x = level(x if i == 0 else self.pool(x))
            skips.append(x)
        return self.head(self.pool(x)).flatten(1), skips


class VGGDecoder(nn.Module):
    """VGG frame decoder with U-Net skips: ``(N, in_dim)`` + skips -> ``(N, C, S, S)``.

    Mirrors :class:`VGGEncoder`: from a ``4x4`` map of the coarsest width, each level doubles
    the side (nearest neighbour), concatenates the encoder's features of that side and runs as
    many ``3x3`` convolutions as the encoder's level, the last of which narrows to the next
    finer width; at the finest level that last convolution produces the frame.

    Args:
        image_size: Frame side ``S``.
        out_channels: Frame channels ``C``.
        channels: Width of the encoder's first level (the skips must come from a
            :class:`VGGEncoder` of the same ``image_size`` and ``channels``).
        in_dim: Size of the vector to decode.
        squash: End with a sigmoid (frames in [0, 1]); False returns raw values, for a head
            that composes the frame itself (:class:`CDNAComposer`).
        frame_channels: Unused (this decoder takes no skip frame); accepted so both
            backbones' decoders are built alike.
    """

    def __init__(
        self,
        image_size: int,
        out_channels: int,
        channels: int,
        in_dim: int,
        squash: bool = True,
        frame_channels: int | None = None,
    ) -> None:
        super().__init__()
        widths = level_widths(image_size, channels)
        depths = vgg_depths(len(widths))
        self.head = nn.Sequential(
            nn.ConvTranspose2d(in_dim, widths[-1], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[-1]),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        levels = []
        for i in range(len(widths) - 1, -1, -1):
            w = widths[i]
            layers = [_vgg_layer(2 * w if j == 0 else w, w) for j in range(depths[i] - 1)]
            if i > 0:
                layers.append(_vgg_layer(w, widths[i - 1]))
            else:
                # No normalisation on the frame itself: BatchNorm would tie a pixel's value
                # to the batch's statistics.
                layers += [
                    nn.Conv2d(w, out_channels, 3, 1, 1),
                    nn.Sigmoid() if squash else nn.Identity(),
                ]
            levels.append(nn.Sequential(*layers))
        self.levels = nn.ModuleList(levels)

    def forward(self, g: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """Decode vectors to frames.

        Args:
            g: ``(N, in_dim)`` vectors.
            skips: The encoder's level features, finest first, each with batch ``N``.

        Returns:
            ``(N, C, S, S)`` frames in [0, 1].
        """
        x = self.head(g[:, :, None, None])  # (N, w_last, 4, 4)
        for level, skip in zip(self.levels, skips[::-1], strict=True):
            x = level(torch.cat([self.up(x), skip], dim=1))  # doubles the side
        return x


#: Names of the frame backbones (a config field's type; the keys of :data:`BACKBONES`).
BackboneName = Literal["dcgan", "vgg"]


class Backbone(NamedTuple):
    """A frame encoder class and the decoder that reads its skips.

    Both are built as ``cls(image_size, frame_channels, channels, vector_size)``.
    """

    encoder: type[ConvEncoder] | type[VGGEncoder]
    decoder: type[ConvDecoder] | type[VGGDecoder]


#: The frame backbones by name.
BACKBONES = Registry[Backbone]("backbone")
BACKBONES.add("dcgan", Backbone(ConvEncoder, ConvDecoder))
BACKBONES.add("vgg", Backbone(VGGEncoder, VGGDecoder))
