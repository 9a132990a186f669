"""The batch layout every model, dataset and planner agrees on.

On disk (HDF5): frames are uint8 ``(T+1, H, W, 3)``; actions float32 ``(T, A)``; robot state
float32 ``(T+1, S)``. Action ``t`` moves frame ``t`` to frame ``t+1``.

In models: a batch is a dict with

* ``FRAMES``: float32 ``(B, L, C, H, W)`` in [0, 1];
* ``STATES``: float32 ``(B, L, S)`` robot state (pusher xy, metres);
* ``ACTIONS``: float32 ``(B, L-1, A)`` in [-1, 1]; ``ACTIONS[:, t]`` acts on ``FRAMES[:, t]``.
"""

import torch

FRAMES = "frames"
STATES = "states"
ACTIONS = "actions"

#: Action and robot-state sizes of the pushing environment.
ACTION_DIM = 2
STATE_DIM = 2


def frames_as(frames: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Frames in the dtype a model asks for: float in [0, 1], or uint8 intensities 0..255.

    float -> uint8 rounds to the nearest level, so 8-bit frames survive the round trip exactly.
    """
    if frames.dtype == dtype:
        return frames
    if dtype == torch.uint8:
        return (frames * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    if frames.dtype == torch.uint8:
        return frames.to(dtype) / 255.0
    return frames.to(dtype)
