"""Reusable building blocks of the video models: conv encoder/decoder backbones, LSTM stacks.

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

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from foresight.registry import Registry


def conv_levels(image_size: int) -> int:
    """Stride-2 levels that take an ``image_size`` frame down to ``4x4`` (3 for 32, 4 for 64).

    Raises:
        ValueError: ``image_size`` is not a power of two of at least 8.
    """
    levels = int(round(math.log2(image_size))) - 2 if image_size > 0 else 0
    if levels < 1 or 4 * 2**levels != image_size:
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    return levels


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


def check_cdna(kernels: int, kernel_size: int) -> None:
    """Raise ``ValueError`` unless CDNA has at least one kernel, of odd size."""
    if kernels < 1 or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            "cdna_kernels must be at least 1 and cdna_kernel_size odd, got "
            f"{kernels} and {kernel_size}"
        )


class CDNAComposer(nn.Module):
    """Compose the next frame by moving the previous one's pixels (CDNA, Finn et al. 2016).

    "Unsupervised Learning for Physical Interaction through Video Prediction" (NeurIPS 2016),
    as used by SNA (Ebert et al. 2017) and SAVP (Lee et al. 2018): ``K`` normalised
    ``k x k`` kernels, predicted from a vector, each convolve the previous frame (every
    channel alike); per-pixel softmax masks then mix those ``K`` moved copies, a background
    frame (pixels the motion uncovers) and a generated frame. A small object that moves keeps
    its pixels, sharp, instead of being redrawn by a decoder that blurs it.

    Args:
        in_dim: Size of the vector the kernels are predicted from.
        kernels: Number of kernels ``K``.
        kernel_size: Side ``k`` of each kernel (odd): the largest motion per step is
            ``k // 2`` pixels.
        channels: Frame channels ``C``.
    """

    def __init__(self, in_dim: int, kernels: int, kernel_size: int, channels: int = 3) -> None:
        super().__init__()
        check_cdna(kernels, kernel_size)
        self.kernels, self.size, self.channels = kernels, kernel_size, channels
        self.kernel_head = nn.Linear(in_dim, kernels * kernel_size**2)
        # Start every kernel near the identity (94% of its weight on the centre tap), so the
        # untrained model copies the previous frame (the best guess for most pixels) instead
        # of blurring it with flat kernels.
        nn.init.normal_(self.kernel_head.weight, std=1e-3)
        with torch.no_grad():
            bias = torch.zeros(kernels, kernel_size**2)
            bias[:, kernel_size**2 // 2] = 6.0
            self.kernel_head.bias.copy_(bias.flatten())

    @property
    def decoder_channels(self) -> int:
        """Channels the decoder must output: the generated frame, then ``K + 2`` mask logits."""
        return self.channels + self.kernels + 2

    def forward(
        self,
        g: torch.Tensor,
        decoded: torch.Tensor,
        previous: torch.Tensor,
        background: torch.Tensor,
    ) -> torch.Tensor:
        """The composed frame.

        Args:
            g: ``(N, in_dim)`` vectors the kernels come from.
            decoded: ``(N, C + K + 2, H, W)`` raw decoder output: the generated frame's
                logits, then the mask logits (``K`` moved copies, background, generated).
            previous: ``(N, C, H, W)`` the frame the kernels move.
            background: ``(N, C, H, W)`` pixels to fall back on where the motion uncovers them.

        Returns:
            ``(N, C, H, W)`` frames in [0, 1].
        """
        n, c, h, w = previous.shape
        k, size = self.kernels, self.size
        generated = torch.sigmoid(decoded[:, :c])  # (N, C, H, W)
        masks = torch.softmax(decoded[:, c:], dim=1)  # (N, K + 2, H, W)
        kernel = torch.softmax(self.kernel_head(g).view(n, k, size * size), dim=-1)
        # Border pixels repeat outwards, so a shift does not drag black in from the edge.
        padded = F.pad(previous, [size // 2] * 4, mode="replicate")
        patches = F.unfold(padded, size).view(n, c, size * size, h, w)  # (N, C, k*k, H, W)
        moved = torch.einsum("nkp,ncphw->nkchw", kernel.to(patches.dtype), patches)
        images = torch.cat([moved, background[:, None], generated[:, None]], dim=1)
        return (masks[:, :, None] * images).sum(dim=1)  # (N, C, H, W)


class LSTMStack(nn.Module):
    """Linear embedding, a multi-layer LSTM, and a linear read-out (seed 004's ``lstm``).

    Runs a whole sequence in one call (teacher forcing) or one step at a time (rollouts),
    carrying the recurrent state explicitly so callers hold no hidden module state.

    Args:
        in_dim: Input size per step.
        hidden: LSTM width.
        layers: Stacked LSTM layers.
        out_dim: Read-out size per step.
    """

    def __init__(self, in_dim: int, hidden: int, layers: int, out_dim: int) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True)
        self.readout = nn.Linear(hidden, out_dim)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Advance the LSTM over ``x``.

        Args:
            x: ``(B, T, in_dim)`` inputs.
            state: ``(h, c)`` each ``(layers, B, hidden)`` from a previous call; zeros if None.

        Returns:
            ``(B, T, out_dim)`` read-outs and the new ``(h, c)``.
        """
        x = self.embed(x)
        # In float32 outside autocast (the precision policy, foresight.training.precision):
        # autocast would run the LSTM and carry its state in half precision.
        dtype = self.lstm.weight_ih_l0.dtype  # the parameters' (float32 under autocast)
        # (Named "cpu" off CUDA: autocast knows no "meta", where memory is estimated.)
        with torch.autocast("cuda" if x.is_cuda else "cpu", enabled=False):
            if state is not None:
                state = (state[0].to(dtype), state[1].to(dtype))
            y, state = self.lstm(x.to(dtype), state)
        return self.readout(y), state


class GaussianLSTM(LSTMStack):
    """An :class:`LSTMStack` whose read-out is a diagonal Gaussian (seed 004's ``gaussian_lstm``).

    Args:
        in_dim: Input size per step.
        hidden: LSTM width.
        layers: Stacked LSTM layers.
        z_dim: Size of the Gaussian variable.
    """

    def __init__(self, in_dim: int, hidden: int, layers: int, z_dim: int) -> None:
        super().__init__(in_dim, hidden, layers, 2 * z_dim)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Advance over ``x``; returns mean and log-variance ``(B, T, z_dim)`` and the state."""
        out, state = super().forward(x, state)
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar, state


def gaussian_sample(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Reparameterised sample of ``N(mu, exp(logvar))``; noise drawn from ``generator``."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """``KL(N(mu_q, var_q) || N(mu_p, var_p))`` summed over the last dimension.

    Args:
        mu_q: ``(..., Z)`` mean of q.
        logvar_q: ``(..., Z)`` log-variance of q.
        mu_p: Mean of p, ``(..., Z)`` or broadcastable to it (e.g. zeros for ``N(0, I)``).
        logvar_p: Log-variance of p, like ``mu_p``.

    Returns:
        ``(...)`` KL per distribution.
    """
    # In float32 even under autocast: the terms nearly cancel when q is close to p.
    mu_q, logvar_q, mu_p, logvar_p = (x.float() for x in (mu_q, logvar_q, mu_p, logvar_p))
    kl = 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1.0)
    return kl.sum(dim=-1)


class ConvLSTMCell(nn.Module):
    """One step of a convolutional LSTM (Shi et al., "Convolutional LSTM Network", NeurIPS 2015).

    The gates are one convolution of the input and the hidden state, so the state keeps its
    spatial layout; on a ``1x1`` map with ``kernel_size=1`` it is an ordinary LSTM cell.

    Args:
        in_channels: Input channels per step.
        hidden: Channels of the hidden and cell states.
        kernel_size: Odd side of the gate convolution.
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel_size, 1, kernel_size // 2)
        # Forget gate open at start, so gradients reach early steps (Jozefowicz et al., 2015).
        with torch.no_grad():
            self.conv.bias[hidden : 2 * hidden].fill_(1.0)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Advance one step.

        Args:
            x: ``(N, in_channels, H, W)`` input.
            state: ``(h, c)`` each ``(N, hidden, H, W)``; zeros if None.

        Returns:
            The new hidden state ``h`` ``(N, hidden, H, W)`` and ``(h, c)``.
        """
        # The gates may come out of the conv in autocast's dtype; the state is updated and
        # kept in the parameters' dtype, float32 under autocast (the precision policy,
        # foresight.training.precision), so bf16 rounding does not build up over the steps.
        dtype = self.conv.weight.dtype
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden, *x.shape[2:], dtype=dtype)
            state = (zeros, zeros)
        h, c = state
        gates = self.conv(torch.cat([x, h.to(x.dtype)], dim=1)).to(dtype)
        i, f, o, g = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c.to(dtype) + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)
