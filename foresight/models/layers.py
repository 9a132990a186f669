"""Building blocks more than one video model shares: CDNA, LSTM stacks, ConvLSTMs, Gaussians.

SVG's frame backbones are :mod:`foresight.models.backbones`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def conv_levels(image_size: int) -> int:
    """Stride-2 levels that take an ``image_size`` frame down to ``4x4`` (3 for 32, 4 for 64).

    Raises:
        ValueError: ``image_size`` is not a power of two of at least 8.
    """
    levels = int(round(math.log2(image_size))) - 2 if image_size > 0 else 0
    if levels < 1 or 4 * 2**levels != image_size:
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    return levels


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


class ConvLSTMStack(nn.Module):
    """:class:`LSTMStack`'s convolutional form, SVG′'s recurrence (Villegas et al., NeurIPS 2019).

    A ``3x3`` convolutional embedding, stacked :class:`ConvLSTMCell` layers and a ``3x3``
    read-out over ``s x s`` maps, so the state keeps where things are. Inputs and outputs are
    flat per step, as :class:`LSTMStack`'s, so a model is written once for both: each step's
    input is ``maps`` channel-major flattened maps followed by a ``vector`` (actions, states)
    that is tiled over the map.

    Args:
        maps: Channels of the spatial part of the input.
        vector: Size of the part tiled over the map (0 for none).
        hidden: Channels of every ConvLSTM layer.
        layers: Stacked ConvLSTM layers.
        out_maps: Channels of the read-out.
        side: Side ``s`` of the maps.
    """

    def __init__(
        self, maps: int, vector: int, hidden: int, layers: int, out_maps: int, side: int
    ) -> None:
        super().__init__()
        self.maps, self.side, self.hidden = maps, side, hidden
        self.embed = nn.Conv2d(maps + vector, hidden, 3, 1, 1)
        self.cells = nn.ModuleList(ConvLSTMCell(hidden, hidden, 3) for _ in range(layers))
        self.readout = nn.Conv2d(hidden, out_maps, 3, 1, 1)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Advance the ConvLSTMs over ``x``.

        Args:
            x: ``(B, T, maps * s * s + vector)`` inputs.
            state: ``(h, c)`` each ``(layers, B, hidden, s, s)`` from a previous call; zeros
                if None.

        Returns:
            ``(B, T, out_maps * s * s)`` read-outs and the new ``(h, c)``.
        """
        b, t, s = x.shape[0], x.shape[1], self.side
        split = self.maps * s * s
        spatial = x[..., :split].reshape(b * t, self.maps, s, s)
        tiled = x[..., split:].reshape(b * t, -1, 1, 1).expand(-1, -1, s, s)
        steps = self.embed(torch.cat([spatial, tiled], dim=1)).reshape(b, t, self.hidden, s, s)
        layers: list[tuple[torch.Tensor, torch.Tensor] | None] = (
            [None] * len(self.cells)
            if state is None
            else list(zip(state[0].unbind(0), state[1].unbind(0), strict=True))
        )
        outs = []
        for k in range(t):
            y = steps[:, k]
            for i, cell in enumerate(self.cells):
                y, layers[i] = cell(y, layers[i])
            outs.append(y)
        y = torch.stack(outs, dim=1).flatten(0, 1)  # (B*T, hidden, s, s)
        out = self.readout(y).reshape(b, t, -1)  # channel-major whatever the memory layout
        h = torch.stack([hc[0] for hc in layers])  # type: ignore[index]
        c = torch.stack([hc[1] for hc in layers])  # type: ignore[index]
        return out, (h, c)


class GaussianConvLSTM(ConvLSTMStack):
    """A :class:`ConvLSTMStack` whose read-out is a diagonal Gaussian over ``s x s`` maps.

    SVG′'s spatial latents: ``z_maps`` channels at every cell of the map.

    Args:
        maps: Channels of the spatial part of the input.
        vector: Size of the part tiled over the map.
        hidden: Channels of every ConvLSTM layer.
        layers: Stacked ConvLSTM layers.
        z_maps: Channels of the Gaussian variable.
        side: Side ``s`` of the maps.
    """

    def __init__(
        self, maps: int, vector: int, hidden: int, layers: int, z_maps: int, side: int
    ) -> None:
        super().__init__(maps, vector, hidden, layers, 2 * z_maps, side)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Advance over ``x``; mean and log-variance ``(B, T, z_maps * s * s)`` and the state.

        The read-out is channel-major, so its first half is the mean's maps.
        """
        out, state = super().forward(x, state)
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar, state
