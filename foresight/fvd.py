"""Fréchet Video Distance with I3D weights the user provides.

FVD (Unterthiner et al. 2018, "Towards Accurate Generative Models of Video: A New Metric &
Challenges") is the Fréchet distance between Gaussians fitted to I3D embeddings of real and of
generated videos. The embedding network is the Kinetics-400 I3D of Carreira & Zisserman 2017
("Quo Vadis, Action Recognition?"): its 400 logits, from frames resized to 224x224 and scaled
to [-1, 1].

No I3D weights ship with any PyPI package and machines here cannot download them, so
``foresight`` never fetches any: the user passes a PyTorch state dict of the Kinetics-400 I3D
(the parameter names of the widely used ``pytorch-i3d`` port, e.g. its ``rgb_imagenet.pt``).
It is loaded with ``weights_only=True`` and ``strict=True``, so a foreign or partial file is an
error and nothing silently stays random. Embeddings come from global average pooling of the
last Inception block followed by the logits layer (the port averages 2x7x7 windows, then
time; for a single window position these agree, otherwise they differ by edge weighting).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from foresight.errors import ForesightError

#: Frame size I3D sees (Kinetics training resolution).
I3D_SIZE = 224
#: Kinetics-400 classes: the embedding size.
I3D_CLASSES = 400


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding (front, back) of one dimension, as I3D was trained with."""
    total = max(kernel - (stride if size % stride == 0 else size % stride), 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    """Pad ``(B, C, T, H, W)`` for a "SAME" 3D window."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride), strict=True):
        pads += _same_padding(size, k, s)
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d ("SAME" padding) + BatchNorm + ReLU, or a biased linear conv for the logits."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        logits: bool = False,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.is_logits = kernel, stride, logits
        self.conv3d = nn.Conv3d(c_in, c_out, kernel, stride, bias=logits)
        # TF's batch-norm epsilon; the port's parameter names are conv3d.* and bn.*.
        self.bn = None if logits else nn.BatchNorm3d(c_out, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, c_in, T, H, W)`` -> ``(B, c_out, ceil(T/st), ceil(H/sh), ceil(W/sw))``."""
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        return x if self.bn is None else F.relu(self.bn(x))


class MaxPoolSame(nn.Module):
    """3D max pooling with "SAME" zero padding (inputs are post-ReLU, so zeros never win)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> ``(B, C, ceil(T/st), ceil(H/sh), ceil(W/sw))``."""
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class Inception(nn.Module):
    """An Inception block: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | max-pool -> 1x1, concatenated.

    Args:
        c_in: Input channels.
        widths: Output channels of b0, b1a, b1b, b2a, b2b, b3b.
    """

    def __init__(self, c_in: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3 = widths
        self.b0 = Unit3D(c_in, w0)
        self.b1a = Unit3D(c_in, w1a)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3D(c_in, w2a)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a = MaxPoolSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(c_in, w3)
        self.channels = w0 + w1b + w2b + w3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, c_in, T, H, W)`` -> ``(B, channels, T, H, W)``."""
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1
        )


class I3D(nn.Module):
    """Inflated Inception-V1 (Carreira & Zisserman 2017), Kinetics-400 logits as embedding.

    Args:
        classes: Logits (400 for Kinetics-400).
    """

    def __init__(self, classes: int = I3D_CLASSES) -> None:
        super().__init__()
        # Attribute names are the pytorch-i3d port's, so its state dicts load strictly.
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = Inception(192, (64, 96, 128, 16, 32, 32))
        self.Mixed_3c = Inception(256, (128, 128, 192, 32, 96, 64))
        self.MaxPool3d_4a_3x3 = MaxPoolSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = Inception(480, (192, 96, 208, 16, 48, 64))
        self.Mixed_4c = Inception(512, (160, 112, 224, 24, 64, 64))
        self.Mixed_4d = Inception(512, (128, 128, 256, 24, 64, 64))
        self.Mixed_4e = Inception(512, (112, 144, 288, 32, 64, 64))
        self.Mixed_4f = Inception(528, (256, 160, 320, 32, 128, 128))
        self.MaxPool3d_5a_2x2 = MaxPoolSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = Inception(832, (256, 160, 320, 32, 128, 128))
        self.Mixed_5c = Inception(832, (384, 192, 384, 48, 128, 128))
        self.logits = Unit3D(1024, classes, logits=True)
        self.trunk = [
            self.Conv3d_1a_7x7, self.MaxPool3d_2a_3x3, self.Conv3d_2b_1x1, self.Conv3d_2c_3x3,
            self.MaxPool3d_3a_3x3, self.Mixed_3b, self.Mixed_3c, self.MaxPool3d_4a_3x3,
            self.Mixed_4b, self.Mixed_4c, self.Mixed_4d, self.Mixed_4e, self.Mixed_4f,
            self.MaxPool3d_5a_2x2, self.Mixed_5b, self.Mixed_5c,
        ]  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed videos.

        Args:
            x: ``(B, 3, T, H, W)`` RGB in [-1, 1].

        Returns:
            ``(B, classes)`` logits, averaged over time and space.
        """
        for layer in self.trunk:
            x = layer(x)  # (B, 1024, ~T/8, ~H/32, ~W/32) after Mixed_5c
        x = x.mean((2, 3, 4), keepdim=True)  # (B, 1024, 1, 1, 1)
        return self.logits(x).flatten(1)  # (B, classes)


def load_i3d(path: str | Path, device: str | torch.device = "cpu") -> I3D:
    """The I3D network with the user's weights; any problem is a one-line error.

    Args:
        path: A ``state_dict`` of the Kinetics-400 I3D (pytorch-i3d parameter names).
        device: Where to put it.
    """
    path = Path(path)
    if not path.is_file():
        raise ForesightError(f"I3D weights {path} do not exist (--i3d takes a .pt state dict)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a torch.load failure on untrusted input is the user's file
        raise ForesightError(
            f"{path} is not a readable PyTorch file of tensors (foresight loads weights "
            "only, never code); --i3d takes the pytorch-i3d port's rgb_imagenet.pt"
        ) from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ForesightError(f"{path} is not an I3D state dict (a dict of tensors)")
    classes = state.get("logits.conv3d.bias")
    net = I3D(classes.shape[0] if classes is not None else I3D_CLASSES)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        expected = net.state_dict()
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
        parts = [
            f"{len(names)} {what} (e.g. {names[0]})"
            for names, what in (
                (missing, "missing"),
                (unexpected, "unexpected"),
                (shapes, "of another shape"),
            )
            if names
        ]
        raise ForesightError(
            f"{path} does not hold the Kinetics I3D's weights (pytorch-i3d names): "
            f"{'; '.join(parts) or 'they do not fit'}"
        ) from err
    return net.to(device).eval()


@torch.no_grad()
def i3d_embeddings(
    net: I3D, videos: torch.Tensor, size: int = I3D_SIZE, batch_size: int = 8
) -> torch.Tensor:
    """I3D embeddings of videos.

    Args:
        net: From :func:`load_i3d`.
        videos: ``(B, T, 3, H, W)`` frames in [0, 1].
        size: Frames are resized (bilinear) to ``size`` x ``size``.
        batch_size: Videos per forward pass.

    Returns:
        ``(B, classes)`` float64 embeddings on the CPU.
    """
    device = next(net.parameters()).device
    out = []
    for chunk in videos.split(batch_size):
        b, t = chunk.shape[:2]
        frames = F.interpolate(
            chunk.flatten(0, 1).float().to(device), size=(size, size), mode="bilinear"
        )
        x = frames.view(b, t, 3, size, size).permute(0, 2, 1, 3, 4) * 2 - 1  # (B, 3, T, S, S)
        out.append(net(x).double().cpu())
    return torch.cat(out)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings.

    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``.

    Args:
        a: ``(N, D)`` embeddings.
        b: ``(M, D)`` embeddings.
    """
    if len(a) < 2 or len(b) < 2:
        raise ForesightError("FVD needs at least 2 videos in each set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((S_a S_b)^(1/2)) = Tr((R S_b R)^(1/2)) with R = S_a^(1/2): a symmetric PSD matrix, so
    # its eigenvalues are exact even when both covariances are singular (fewer videos than
    # dimensions, the usual case), where sqrtm of the product is ill-conditioned.
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)
    return max(value, 0.0) if math.isfinite(value) else float("nan")
