"""Sampling a frame from the Video Pixel Network's decoder, sub-pixel by sub-pixel.

Kalchbrenner et al., "Video Pixel Networks", ICML 2017 (seed 003). Every sampler draws the
same frame from the same uniforms: :func:`sample_naive` reruns the whole decoder for each of
the ``3 H W`` sub-pixels (the reference), :func:`sample_fast` computes only what each new
sub-pixel changes (:class:`RasterConv`), and :func:`sample_independent` serves a decoder that
does not see its frame (the paper's baseline) in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from foresight.models.vpn_net import COLOURS, MaskedConv2d, PixelDecoder
from foresight.registry import Registry

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
