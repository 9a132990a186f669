"""Image grids, PNGs and GIFs: the one place frames become pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from foresight.io import atomic_path


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Frames as uint8 ``(..., H, W, 3)``: accepts uint8 HWC or float [0, 1] CHW/HWC."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        if frames.shape[-1] != 3 and frames.shape[-3] == 3:
            frames = np.moveaxis(frames, -3, -1)
        frames = (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return frames


def grid(frames: np.ndarray, gap: int = 1, scale: int = 1) -> np.ndarray:
    """Tile ``(R, C, H, W, 3)`` frames into one ``(R*(H+gap)-gap, C*(W+gap)-gap, 3)`` image.

    Args:
        frames: Frames in any layout :func:`to_uint8` accepts, rows first.
        gap: White pixels between tiles.
        scale: Integer upscaling (nearest) of each tile, for small frames.
    """
    frames = to_uint8(frames)
    if scale > 1:
        frames = frames.repeat(scale, axis=-3).repeat(scale, axis=-2)
    r, c, h, w, _ = frames.shape
    out = np.full((r * (h + gap) - gap, c * (w + gap) - gap, 3), 255, np.uint8)
    for i in range(r):
        for j in range(c):
            out[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = frames[i, j]
    return out


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an ``(H, W, 3)`` image to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(to_uint8(image)).save(tmp, format="PNG")
    return path


def save_gif(frames: np.ndarray, path: str | Path, fps: float = 5.0) -> Path:
    """Write ``(T, H, W, 3)`` frames as a looping GIF, atomically."""
    path = Path(path)
    images = [Image.fromarray(f) for f in to_uint8(frames)]
    with atomic_path(path, suffix=".gif") as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=int(1000 / fps),
            loop=0,
        )
    return path
