"""SVG's frame backbones: conv encoders to a vector or a map, and decoders that read their skips.

Two frame backbones of SVG (Denton & Fergus, 2018, seed 004), chosen by name in
:data:`BACKBONES`; both halve the image level by level until it is ``4x4``, then take it to a
vector with a ``4x4`` valid convolution, and both decoders mirror their encoder and take its
per-level feature maps as skip connections. With ``latent_side`` ``s > 1`` (SVG′, Villegas et
al. 2019) they stop halving at ``s x s`` and the embedding is a ``3x3``-convolved map of that
side instead of a vector, returned flattened (channel-major) so the recurrent layers and the
model code see one ``(N, D)`` layout either way:

* ``dcgan`` (Radford et al., 2016): one ``4x4`` stride-2 convolution per level; the decoder
  also sees (our addition) the skip frame's own pixels before its last ``3x3`` convolution.
* ``vgg``: the authors' BAIR backbone, blocks of ``3x3`` convolutions (2, 2, then 3 per level)
  separated by ``2x2`` max-pooling; the decoder upsamples by nearest neighbour. About twice the
  parameters of ``dcgan`` at the same widths.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from torch import nn

from foresight.models.layers import conv_levels
from foresight.registry import Registry


def check_latent_side(image_size: int, latent_side: int) -> None:
    """Raise ``ValueError`` unless ``latent_side`` is 1 or a power of two in ``[4, S/2]``."""
    levels = conv_levels(image_size)
    sides = [1, *(4 * 2**i for i in range(levels))]
    if latent_side not in sides:
        raise ValueError(
            f"latent_side must be one of {sides} at image_size {image_size}, got {latent_side}"
        )


def level_widths(image_size: int, channels: int, latent_side: int = 1) -> list[int]:
    """Channels of each encoder level: ``channels`` doubling per level (64, 128, 256, 512).

    The levels halve the frame down to ``max(latent_side, 4)``: three for ``S = 32`` with a
    vector or a ``4x4`` map, two with an ``8x8`` map.
    """
    check_latent_side(image_size, latent_side)
    dropped = int(math.log2(max(latent_side, 4))) - 2
    return [channels * 2**i for i in range(conv_levels(image_size) - dropped)]


def _embedding_head(cin: int, out_dim: int, latent_side: int) -> nn.Sequential:
    """The encoder's last layer: a ``4x4`` valid conv to a vector, or a ``3x3`` one to a map.

    tanh bounds the embedding, as in seed 004's encoder, so the LSTMs see inputs of a fixed
    scale whether a frame is real or one the model decoded itself.
    """
    conv = (
        nn.Conv2d(cin, out_dim, 4, 1, 0, bias=False)
        if latent_side == 1
        else nn.Conv2d(cin, out_dim, 3, 1, 1, bias=False)
    )
    return nn.Sequential(conv, nn.BatchNorm2d(out_dim), nn.Tanh())


def _as_map(g: torch.Tensor, latent_side: int) -> torch.Tensor:
    """``(N, D * s * s)`` flat embeddings -> ``(N, D, s, s)`` maps (``s = 1``: a vector)."""
    return g.view(g.shape[0], -1, latent_side, latent_side)


def _decoder_head(in_dim: int, cout: int, latent_side: int) -> nn.Sequential:
    """The decoder's first layer: a vector to a ``4x4`` map, or a ``3x3`` conv of the map."""
    conv = (
        nn.ConvTranspose2d(in_dim, cout, 4, 1, 0, bias=False)
        if latent_side == 1
        else nn.Conv2d(in_dim, cout, 3, 1, 1, bias=False)
    )
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


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
    """DCGAN frame encoder: ``(N, C, S, S)`` -> a ``(N, out_dim * s * s)`` embedding and skips.

    Args:
        image_size: Frame side ``S`` (a power of two >= 8).
        in_channels: Frame channels ``C``.
        channels: Width of the first level; each further level doubles it.
        out_dim: Channels of the frame embedding (its size when ``latent_side`` is 1).
        latent_side: Side ``s`` of the embedding: 1 (a vector, seed 004) or a map's side.
    """

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        channels: int,
        out_dim: int,
        latent_side: int = 1,
    ) -> None:
        super().__init__()
        widths = level_widths(image_size, channels, latent_side)
        self.levels = nn.ModuleList(
            _down(cin, cout) for cin, cout in zip([in_channels, *widths[:-1]], widths, strict=True)
        )
        self.head = _embedding_head(widths[-1], out_dim, latent_side)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encode frames.

        Args:
            x: ``(N, C, S, S)`` frames in [0, 1].

        Returns:
            The embedding ``(N, out_dim * s * s)`` and the skips, finest first: the frame
            itself ``(N, C, S, S)``, then the feature map of every level ``i``:
            ``(N, channels * 2**i, S / 2**(i+1), S / 2**(i+1))``.
        """
        skips = [x]
        for level in self.levels:
            x = level(x)
            skips.append(x)
        return self.head(x).flatten(1), skips


class ConvDecoder(nn.Module):
    """DCGAN frame decoder with U-Net skips: ``(N, in_dim * s * s)`` + skips -> ``(N, C, S, S)``.

    Args:
        image_size: Frame side ``S``.
        out_channels: Frame channels ``C``.
        channels: Width of the encoder's first level (the skips must come from a
            :class:`ConvEncoder` of the same ``image_size`` and ``channels``).
        in_dim: Channels of the embedding to decode (its size when ``latent_side`` is 1).
        squash: End with a sigmoid (frames in [0, 1]); False returns raw values, for a head
            that composes the frame itself (:class:`CDNAComposer`).
        frame_channels: Channels of the skip frame (default: ``out_channels``).
        latent_side: Side ``s`` of the embedding, as the encoder's.
    """

    def __init__(
        self,
        image_size: int,
        out_channels: int,
        channels: int,
        in_dim: int,
        squash: bool = True,
        frame_channels: int | None = None,
        latent_side: int = 1,
    ) -> None:
        super().__init__()
        widths = level_widths(image_size, channels, latent_side)
        frame_channels = out_channels if frame_channels is None else frame_channels
        self.latent_side = latent_side
        self.head = _decoder_head(in_dim, widths[-1], latent_side)
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
        """Decode embeddings to frames.

        Args:
            g: ``(N, in_dim * s * s)`` embeddings (flattened maps when ``s > 1``).
            skips: The encoder's skips (frame, then level features, finest first), each with
                batch ``N``.

        Returns:
            ``(N, C, S, S)`` frames in [0, 1].
        """
        frame, *features = skips
        x = self.head(_as_map(g, self.latent_side))  # (N, w_last, max(s, 4), max(s, 4))
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
    """VGG frame encoder: ``(N, C, S, S)`` -> a ``(N, out_dim * s * s)`` embedding and skips.

    Level ``i`` runs :func:`vgg_depths` ``3x3`` convolutions of ``channels * 2**i`` at side
    ``S / 2**i`` and is followed by a ``2x2`` max-pool; at ``S = 64`` and ``channels = 64`` the
    levels are 64,64 | 128,128 | 256,256,256 | 512,512,512 as in seed 004's BAIR model, and at
    ``S = 32`` the 512-wide level is dropped.

    Args:
        image_size: Frame side ``S`` (a power of two >= 8).
        in_channels: Frame channels ``C``.
        channels: Width of the first level; each further level doubles it.
        out_dim: Channels of the frame embedding (its size when ``latent_side`` is 1).
        latent_side: Side ``s`` of the embedding: 1 (a vector, seed 004) or a map's side.
    """

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        channels: int,
        out_dim: int,
        latent_side: int = 1,
    ) -> None:
        super().__init__()
        widths = level_widths(image_size, channels, latent_side)
        ins = [in_channels, *widths[:-1]]
        self.levels = nn.ModuleList(
            nn.Sequential(*(_vgg_layer(cin if j == 0 else w, w) for j in range(depth)))
            for cin, w, depth in zip(ins, widths, vgg_depths(len(widths)), strict=True)
        )
        self.pool = nn.MaxPool2d(2)
        self.head = _embedding_head(widths[-1], out_dim, latent_side)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encode frames.

        Args:
            x: ``(N, C, S, S)`` frames in [0, 1].

        Returns:
            The embedding ``(N, out_dim * s * s)`` and the skips, finest first: the output of
            every level ``i`` before its pooling, ``(N, channels * 2**i, S / 2**i, S / 2**i)``.
        """
        skips = []
        for i, level in enumerate(self.levels):
            x = level(x if i == 0 else self.pool(x))
            skips.append(x)
        return self.head(self.pool(x)).flatten(1), skips


class VGGDecoder(nn.Module):
    """VGG frame decoder with U-Net skips: ``(N, in_dim * s * s)`` + skips -> ``(N, C, S, S)``.

    Mirrors :class:`VGGEncoder`: from a map of the coarsest width (``4x4`` from a vector, else
    the embedding's side), each level doubles
    the side (nearest neighbour), concatenates the encoder's features of that side and runs as
    many ``3x3`` convolutions as the encoder's level, the last of which narrows to the next
    finer width; at the finest level that last convolution produces the frame.

    Args:
        image_size: Frame side ``S``.
        out_channels: Frame channels ``C``.
        channels: Width of the encoder's first level (the skips must come from a
            :class:`VGGEncoder` of the same ``image_size`` and ``channels``).
        in_dim: Channels of the embedding to decode (its size when ``latent_side`` is 1).
        squash: End with a sigmoid (frames in [0, 1]); False returns raw values, for a head
            that composes the frame itself (:class:`CDNAComposer`).
        frame_channels: Unused (this decoder takes no skip frame); accepted so both
            backbones' decoders are built alike.
        latent_side: Side ``s`` of the embedding, as the encoder's.
    """

    def __init__(
        self,
        image_size: int,
        out_channels: int,
        channels: int,
        in_dim: int,
        squash: bool = True,
        frame_channels: int | None = None,
        latent_side: int = 1,
    ) -> None:
        super().__init__()
        widths = level_widths(image_size, channels, latent_side)
        depths = vgg_depths(len(widths))
        self.latent_side = latent_side
        self.head = _decoder_head(in_dim, widths[-1], latent_side)
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
        """Decode embeddings to frames.

        Args:
            g: ``(N, in_dim * s * s)`` embeddings (flattened maps when ``s > 1``).
            skips: The encoder's level features, finest first, each with batch ``N``.

        Returns:
            ``(N, C, S, S)`` frames in [0, 1].
        """
        # (N, w_last, S', S'), S' half the coarsest level's side: each level upsamples first.
        x = self.head(_as_map(g, self.latent_side))
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
