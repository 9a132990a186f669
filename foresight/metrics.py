"""Frame-quality metrics: the one module every trainer, evaluator and report reads scores from.

Every metric maps predicted and true frames ``(..., C, H, W)`` in [0, 1] to one score per frame
``(...)``, batched in torch on whatever device the frames live on. :data:`FRAME_METRICS` lists
them by name with their direction, so a new metric (e.g. LPIPS, which needs a network and so a
device-resident instance) is added by putting one more :class:`FrameMetric` in a tuple, and
:func:`rollout_scores` then reports it per future step, as mean-of-N and best-of-N.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: SSIM constants of Wang et al. (2004), "Image quality assessment: from error visibility to
#: structural similarity".
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio of each frame, in dB.

    Args:
        pred: ``(..., C, H, W)`` predicted frames.
        target: ``(..., C, H, W)`` true frames, same shape.
        data_range: Difference between the largest and smallest possible pixel value.

    Returns:
        ``(...)`` PSNR per frame; ``inf`` where a frame is reproduced exactly.
    """
    _check_shapes(pred, target)
    mse = torch.mean((pred.double() - target.double()) ** 2, dim=(-3, -2, -1))
    return (10.0 * torch.log10(data_range**2 / mse)).to(pred.dtype)


def sharpness_difference(
    pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0
) -> torch.Tensor:
    """Sharpness difference of each frame, in dB (Mathieu, Couprie & LeCun 2016, eq. 9).

    ``10 log10(max^2 / mean |(g_i(Y) + g_j(Y)) - (g_i(P) + g_j(P))|)`` with
    ``g_i(X) = |X[i, j] - X[i-1, j]|`` and ``g_j(X) = |X[i, j] - X[i, j-1]|``: how closely the
    prediction's local gradient magnitudes match the truth's. Unlike PSNR it does not reward a
    blurred average of the possible futures, whose edges are weaker than any real frame's.
    Colour channels are averaged like pixels.

    Args:
        pred: ``(..., C, H, W)`` predicted frames.
        target: ``(..., C, H, W)`` true frames, same shape.
        data_range: Difference between the largest and smallest possible pixel value.

    Returns:
        ``(...)`` sharpness difference per frame (higher is better); ``inf`` where the
        gradients match exactly.
    """
    _check_shapes(pred, target)

    def gradients(x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        centre = x[..., 1:, 1:]
        return (centre - x[..., :-1, 1:]).abs() + (centre - x[..., 1:, :-1]).abs()

    diff = torch.mean((gradients(target) - gradients(pred)).abs(), dim=(-3, -2, -1))
    return (10.0 * torch.log10(data_range**2 / diff)).to(pred.dtype)


def gaussian_kernel(
    size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Normalised 1-D Gaussian taps ``(size,)``, as ``scipy.ndimage.gaussian_filter`` uses."""
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    window: int = 11,
    sigma: float = 1.5,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Structural similarity of each frame (Wang et al., 2004), averaged over channels.

    Local statistics use a separable Gaussian window (``window`` taps, std ``sigma``) and the
    population covariance; the SSIM map is averaged over the positions where the window fits
    inside the frame (a 'valid' convolution). This equals
    ``skimage.metrics.structural_similarity(..., channel_axis=-1, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1)``, which filters the whole frame and
    then crops the border the window overhangs.

    Args:
        pred: ``(..., C, H, W)`` predicted frames.
        target: ``(..., C, H, W)`` true frames, same shape; ``H, W >= window``.
        data_range: Difference between the largest and smallest possible pixel value.
        window: Taps of the Gaussian window (odd).
        sigma: Standard deviation of the window, in pixels.
        dtype: Precision of the local statistics: variances are differences of nearly equal
            moments, so float32 loses ~1e-4 of SSIM in flat regions; float64 matches skimage.

    Returns:
        ``(...)`` SSIM per frame, in [-1, 1], in the dtype of ``pred``.
    """
    _check_shapes(pred, target)
    *lead, c, h, w = pred.shape
    if h < window or w < window:
        raise ValueError(f"SSIM needs frames of at least {window}x{window}, got {h}x{w}")
    x = pred.reshape(-1, 1, h, w).to(dtype)
    y = target.reshape(-1, 1, h, w).to(dtype)
    taps = gaussian_kernel(window, sigma, dtype).to(x.device)
    # All five moments share one pair of separable convolutions: stack them on the batch axis.
    stack = torch.cat([x, y, x * x, y * y, x * y])
    blurred = F.conv2d(F.conv2d(stack, taps.view(1, 1, 1, -1)), taps.view(1, 1, -1, 1))
    mx, my, mxx, myy, mxy = blurred.chunk(5)
    vx, vy, cxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    per_channel = ssim_map.mean(dim=(-3, -2, -1)).reshape(*lead, c)
    return per_channel.mean(dim=-1).to(pred.dtype)


def _check_shapes(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if pred.dim() < 3:
        raise ValueError(f"frames must be (..., C, H, W), got {tuple(pred.shape)}")


@dataclass(frozen=True)
class FrameMetric:
    """A per-frame score and which direction is better.

    Attributes:
        name: Key in metrics files (``psnr``, ``ssim``, ...).
        fn: ``(pred, target) -> scores``: ``(..., C, H, W)`` twice to ``(...)``.
        higher_is_better: Direction used to pick the best of N samples.
    """

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    higher_is_better: bool = True


#: The pixel metrics every validation and evaluation reports (sharpness: the sharpness
#: difference, a blur detector next to PSNR and SSIM).
FRAME_METRICS: tuple[FrameMetric, ...] = (
    FrameMetric("psnr", psnr),
    FrameMetric("ssim", ssim),
    FrameMetric("sharpness", sharpness_difference),
)


def rollout_scores(
    pred: torch.Tensor,
    target: torch.Tensor,
    metrics: Sequence[FrameMetric] = FRAME_METRICS,
) -> dict[str, dict[str, torch.Tensor]]:
    """Score N sampled futures per sequence against the true future, per step.

    As in Denton & Fergus (2018), "best" is the one sample (per sequence and metric) whose
    score averaged over the future steps is best, reported at every step; "mean" averages the
    N samples at each step.

    Args:
        pred: ``(B, N, T, C, H, W)`` sampled futures.
        target: ``(B, T, C, H, W)`` true future.
        metrics: The metrics to compute.

    Returns:
        ``{metric: {"mean": (B, T), "best": (B, T)}}`` per-sequence, per-step scores
        (float64, on the frames' device; PSNR of an exact frame is capped at 100 dB so that
        averages stay finite).
    """
    if pred.dim() != 6 or target.dim() != 5 or pred.shape[2:] != target.shape[1:]:
        raise ValueError(
            f"expected pred (B, N, T, C, H, W) and target (B, T, C, H, W), got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    truth = target.unsqueeze(1).expand_as(pred)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for metric in metrics:
        scores = metric.fn(pred, truth).double().clamp(-100.0, 100.0)  # (B, N, T)
        overall = scores.mean(dim=2)  # (B, N)
        pick = overall.argmax(dim=1) if metric.higher_is_better else overall.argmin(dim=1)
        best = scores[torch.arange(scores.shape[0], device=scores.device), pick]
        out[metric.name] = {"mean": scores.mean(dim=1), "best": best}
    return out
