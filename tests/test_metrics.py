from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from foresight.metrics import FRAME_METRICS, psnr, rollout_scores, sharpness_difference, ssim


def _pairs(seed: int, n: int = 4, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Frames with structure (smooth blobs + noise) and a perturbed copy, float in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack(
        [
            np.stack([np.sin(6 * xx * (c + 1) + k) * np.cos(4 * yy + c) for c in range(3)], -1)
            for k in range(n)
        ]
    )
    a = np.clip(0.5 + 0.4 * base + 0.05 * rng.standard_normal(base.shape), 0, 1)
    b = np.clip(a + 0.15 * rng.standard_normal(a.shape), 0, 1)
    b[0] = a[0]  # one identical pair: SSIM exactly 1
    b[1, :, : size // 2] = 0.3  # one pair with a flat region
    return a, b


def _to_torch(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).float()  # (N, C, H, W)


@pytest.mark.parametrize("size", [11, 32, 64])
def test_ssim_matches_skimage(size: int) -> None:
    a, b = _pairs(size, size=size)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    ours = ssim(_to_torch(b32), _to_torch(a32)).numpy()
    ref = [
        structural_similarity(
            a32[i].astype(np.float64),
            b32[i].astype(np.float64),
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1,
        )
        for i in range(len(a))
    ]
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    assert ours[0] == pytest.approx(1.0, abs=1e-6)
    assert len(set(np.round(ref, 3))) == len(ref)  # the cases really differ


def test_psnr_matches_skimage() -> None:
    a, b = _pairs(1)
    ours = psnr(_to_torch(b), _to_torch(a)).numpy()
    ref = [peak_signal_noise_ratio(a[i], b[i], data_range=1) for i in range(1, len(a))]
    assert np.isinf(ours[0])
    np.testing.assert_allclose(ours[1:], ref, rtol=1e-5)


def test_metrics_are_batched_over_leading_dims() -> None:
    a, b = _pairs(2)
    x, y = _to_torch(b), _to_torch(a)
    for metric in FRAME_METRICS:
        flat = metric.fn(x, y)
        nested = metric.fn(x.reshape(2, 2, 3, 32, 32), y.reshape(2, 2, 3, 32, 32))
        assert nested.shape == (2, 2)
        torch.testing.assert_close(nested.reshape(-1), flat)


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="differ"):
        ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 15))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_rollout_scores_mean_and_best_of_n() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 5, 3, 16, 16, generator=gen)
    noise = torch.rand(2, 3, 5, 3, 16, 16, generator=gen) - 0.5
    # Sample k has noise scaled by (k + 1): sample 0 is best for every sequence.
    scale = torch.tensor([0.1, 0.5, 1.0]).view(1, 3, 1, 1, 1, 1)
    pred = (target.unsqueeze(1) + scale * noise).clamp(0, 1)
    scores = rollout_scores(pred, target)
    for name in ("psnr", "ssim"):
        assert scores[name]["mean"].shape == (2, 5)
        metric = next(m for m in FRAME_METRICS if m.name == name)
        per_sample = metric.fn(pred, target.unsqueeze(1).expand_as(pred)).double()
        torch.testing.assert_close(scores[name]["best"], per_sample[:, 0])
        torch.testing.assert_close(scores[name]["mean"], per_sample.mean(1))
        assert (scores[name]["best"] > scores[name]["mean"]).all()


def test_sharpness_difference_follows_the_papers_formula() -> None:
    a, b = _pairs(1)
    ours = sharpness_difference(_to_torch(b), _to_torch(a)).numpy()

    def grads(x: np.ndarray) -> np.ndarray:  # (H, W, C), eq. 9 of Mathieu et al. (2016)
        x = x.astype(np.float64)
        return np.abs(x[1:, 1:] - x[:-1, 1:]) + np.abs(x[1:, 1:] - x[1:, :-1])

    ref = [10 * np.log10(1 / np.mean(np.abs(grads(a[i]) - grads(b[i])))) for i in range(1, len(a))]
    assert np.isinf(ours[0])
    np.testing.assert_allclose(ours[1:], ref, rtol=1e-5)


def test_sharpness_measures_edges_not_intensity() -> None:
    a, _ = _pairs(1)
    target = _to_torch(a)[1:]
    # A uniform brightness offset keeps every edge: PSNR drops, sharpness stays perfect.
    brighter = target + 0.1
    assert (psnr(brighter, target) < 21).all()
    assert (sharpness_difference(brighter, target) > 60).all()  # float32 rounding only
    # Blur weakens edges, and more blur weakens them more.
    scores = [
        sharpness_difference(F.avg_pool2d(target, k, stride=1, padding=k // 2), target)
        for k in (3, 5, 7)
    ]
    assert (scores[0] > scores[1]).all() and (scores[1] > scores[2]).all()
