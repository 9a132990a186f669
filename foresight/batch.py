"""The batch layout every model, dataset and planner agrees on.

On disk (HDF5): frames are uint8 ``(T+1, H, W, 3)``; actions float32 ``(T, A)``; robot state
float32 ``(T+1, S)``. Action ``t`` moves frame ``t`` to frame ``t+1``.

In models: a batch is a dict with

* ``FRAMES``: float32 ``(B, L, C, H, W)`` in [0, 1];
* ``STATES``: float32 ``(B, L, S)`` robot state (pusher xy, metres);
* ``ACTIONS``: float32 ``(B, L-1, A)`` in [-1, 1]; ``ACTIONS[:, t]`` acts on ``FRAMES[:, t]``.
"""

FRAMES = "frames"
STATES = "states"
ACTIONS = "actions"

#: Action and robot-state sizes of the pushing environment.
ACTION_DIM = 2
STATE_DIM = 2
