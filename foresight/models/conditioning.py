"""What every action-conditioned model reads besides frames: actions and observed robot states.

A planner knows the actions it imagines and the robot states it has *observed*, never a future
state. So a step is conditioned on its action and the state of its input frame while that frame
is observed (the context), and on the last observed state after it (:func:`observed_states`);
training uses the same rule, so training and rollout inputs agree. States are scaled by
``state_scale`` to bring the pusher's xy (metres, within +-0.25) to about [-1, 1] like the
actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from foresight.models.base import ModelConfig


@dataclass(frozen=True)
class ConditionedConfig(ModelConfig):
    """Config fields of a model conditioned on actions and observed robot states.

    Attributes:
        state_scale: Robot states are multiplied by this before conditioning, to bring the
            pusher's xy (metres, within +-0.25) to about [-1, 1] like the actions.
    """

    state_scale: float = 4.0


def observed_states(states: torch.Tensor, context: int, steps: int) -> torch.Tensor:
    """The robot state each step is conditioned on: its input frame's, up to the last observed.

    Args:
        states: ``(B, >=context, S)`` states; only the first ``context`` are read.
        context: Number of observed frames.
        steps: Number of steps (transitions).

    Returns:
        ``(B, steps, S)``: step ``t`` gets ``states[:, min(t, context - 1)]``.
    """
    idx = torch.arange(steps, device=states.device).clamp(max=context - 1)
    return states[:, idx]


def action_state(
    states: torch.Tensor, actions: torch.Tensor, context: int, state_scale: float
) -> torch.Tensor:
    """Each step's conditioning vector: its action and its scaled observed state.

    Args:
        states: ``(B, >=context, S)`` robot states; only the first ``context`` are read.
        actions: ``(B, T, A)``, ``actions[:, t]`` taken at frame ``t``.
        context: Number of observed frames.
        state_scale: Factor on the states.

    Returns:
        ``(B, T, A+S)``.
    """
    s = observed_states(states, context, actions.shape[1]) * state_scale
    return torch.cat([actions, s], dim=-1)
